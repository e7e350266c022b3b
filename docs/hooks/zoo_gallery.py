"""mkdocs hook: the zoo gallery page (gallery.md), generated from zoo/manifest.json each time the site is built.

Nothing here is written into docs/: the page, each entry's learning curve over the paper's band (drawn by
`mrq_agents.report`, as `mrq report` draws it, from the metrics.csv the entry ships) and a still of its replay
video are generated into build/zoo-gallery/ (ignored by git) and added to the site, and the videos are copied
from zoo/<entry>/. Scores come from the manifest, the paper's score at the same step and the placement from
`mrq_agents.paper.placement`, the play command from `mrq_agents.zoo.play_id`.
"""

from __future__ import annotations

import json
import logging
import posixpath
import shutil
from pathlib import Path
from typing import Any

from markdown.extensions.toc import slugify
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "zoo"
MANIFEST = ZOO / "manifest.json"
OUT = ROOT / "build" / "zoo-gallery"  # generated figures and stills, copied into the site
PAGE = "gallery.md"
ASSETS = "zoo-gallery"  # their folder in the site

log = logging.getLogger("mkdocs.hooks.zoo_gallery")


def entries() -> list[dict[str, Any]]:
    return json.loads(MANIFEST.read_text())["entries"]


def paper_cells(entry: dict[str, Any]) -> tuple[str, str]:
    """(the paper's score at the entry's step, the placement) through mrq_agents.paper.placement."""
    from mrq_agents.paper import placement

    place = placement(entry["env_id"], entry["steps"], entry["score"]["mean"])
    if not place.has_reference:
        return place.reference_text(), "-"
    reference = f"{place.mean:g} (IQR {place.p25:g} to {place.p75:g}) at {place.paper_step:,} steps"
    if place.next_paper_step is not None:  # only the untrained step 0 precedes the entry
        after = placement(entry["env_id"], place.next_paper_step)
        reference += (
            f" (untrained agents); the paper's next evaluation: {after.mean:g} (IQR {after.p25:g} to "
            f"{after.p75:g}) at {after.paper_step:,}"
        )
        return reference, "not placed: the paper evaluates no trained agent at or before this step"
    return reference, f"**{place.where}** the paper's interquartile range"


def score_text(entry: dict[str, Any]) -> str:
    score = entry["score"]
    policy = "" if score.get("deterministic", True) else ", sampled as the paper evaluates discrete actions"
    return f"{score['mean']:.1f} ± {score['std']:.1f} ({score['episodes']} episodes, seed {score['seed']}{policy})"


def draw_curve(entry: dict[str, Any], path: Path) -> bool:
    """The entry's evaluations over the paper's band, as `mrq report` draws them; False without metrics.csv."""
    from mrq_agents import paper, report

    run = report.read_run(ZOO / entry["folder"]) if (ZOO / entry["folder"] / "metrics.csv").exists() else None
    if run is None:
        return False
    label = paper.paper_env_name(entry["env_id"]) or entry["env_id"]
    report.env_figure(report.env_curve(label, [run]), path)
    return True


def draw_still(video: Path, path: Path) -> bool:
    """A frame a third of the way into the replay: the video's poster, and what a browser without H.264 shows.

    One decoding pass (no seek). False where ffmpeg fails (imageio gives it 10 s to start, which a starved machine
    can miss): the video is then shown without a poster."""
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(video)
        try:
            meta = reader.get_meta_data()
            target = int(meta["duration"] * meta["fps"]) // 3
            frame = None
            for index, frame in enumerate(reader):
                if index >= target:
                    break
        finally:
            reader.close()
    except OSError as err:
        log.info("zoo gallery: no still of %s (%s)", video, str(err).splitlines()[0])
        return False
    if frame is None:
        return False
    imageio.imwrite(path, frame)
    return True


def entry_section(entry: dict[str, Any], assets: dict[str, str]) -> str:
    """One entry's markdown; `assets` maps 'video', 'still' (URLs relative to the page's) and 'curve' (a path
    relative to the page's source) to where they are."""
    from mrq_agents import zoo

    reference, where = paper_cells(entry)
    if "video" in assets:
        video = (
            '<video controls loop muted playsinline preload="none"'
            + (f' poster="{assets["still"]}"' if "still" in assets else "")
            + f' src="{assets["video"]}"></video>'
        )
    else:
        video = '<p class="zoo-missing">This entry has no replay video.</p>'
    if "curve" in assets:
        curve = f"![learning curve of {entry['env_id']} over the paper's band]({assets['curve']})"
    else:
        curve = '<p class="zoo-missing">No learning curve: this checkout lacks the entry\'s metrics.csv.</p>'
    note = f"; {entry['note'].rstrip('.')}." if entry.get("note") else "."
    return "\n".join(
        [
            f"## `{zoo.play_id(entry)}`",
            "",
            '<div class="zoo-media" markdown>',
            video,
            curve,
            "</div>",
            "",
            f"- **Zoo id**: `{entry['repo_id']}`; {entry['steps']:,} steps, preset {zoo.preset_text(entry)}",
            f"- **Return**: {score_text(entry)}",
            f"- **The paper at the same step** (10 seeds, full-size config): {reference}",
            f"- **Against the paper**: {where}",
            "",
            "```bash",
            f"mrq play {zoo.play_id(entry)}",
            "# the score above, re-measured from the shipped files:",
            entry["eval_command"],
            "```",
            "",
            f"Trained with `{entry['command']}`{note}",
            "",
        ]
    )


def summary_table(rows: list[dict[str, Any]]) -> str:
    from mrq_agents import zoo
    from mrq_agents.paper import placement

    lines = [
        "| env (`mrq play ENV`) | steps | return | the paper at the same step | against the paper |",
        "|---|---:|---|---|---|",
    ]
    for entry in rows:
        reference, _ = paper_cells(entry)
        place = placement(entry["env_id"], entry["steps"], entry["score"]["mean"])
        where = place.where or ("not placed" if place.next_paper_step is not None else "-")
        anchor = slugify(zoo.play_id(entry), "-")  # the heading's id, as the toc extension makes it
        lines.append(
            f"| [`{zoo.play_id(entry)}`](#{anchor}) | {entry['steps']:,} | {entry['score']['mean']:.1f} ± "
            f"{entry['score']['std']:.1f} | {reference.split(' (untrained')[0]} | {where} |"
        )
    return "\n".join(lines)


def on_files(files: Files, config) -> Files:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    rows = entries()
    page = File.generated(config, PAGE, content="")  # its URL, to link the assets from it
    sections = []
    for entry in rows:
        name = entry["folder"]
        assets: dict[str, str] = {}
        video = ZOO / name / "replay.mp4"
        generated = []
        if video.exists():
            generated.append((f"{ASSETS}/{name}.mp4", video, "video"))
            if draw_still(video, OUT / f"{name}.png"):
                generated.append((f"{ASSETS}/{name}.png", OUT / f"{name}.png", "still"))
        if draw_curve(entry, OUT / f"{name}-curve.png"):
            generated.append((f"{ASSETS}/{name}-curve.png", OUT / f"{name}-curve.png", "curve"))
        for uri, source, kind in generated:
            asset = File.generated(config, uri, abs_src_path=str(source))
            files.append(asset)
            # markdown links are written against the page's source; raw HTML (the video) against its URL
            assets[kind] = (
                posixpath.relpath(uri, posixpath.dirname(PAGE) or ".")
                if kind == "curve"
                else get_relative_url(asset.url, page.url)
            )
        if kind_missing := {"video", "curve"} - set(assets):
            log.info("zoo gallery: %s has no %s", name, " and no ".join(sorted(kind_missing)))
        sections.append(entry_section(entry, assets))
    text = "\n".join(
        [
            "# Zoo gallery",
            "",
            "<!-- Generated from zoo/manifest.json by docs/hooks/zoo_gallery.py when the site is built. -->",
            "",
            f"Every agent of the zoo ({len(rows)} entries in `zoo/manifest.json`), generated from the manifest when "
            "this site is built: its replay video where the entry has one, its learning curve over the paper's "
            "band (the paper's mean dashed, 25th-75th percentile shaded, drawn as `mrq report` draws it from the "
            "`metrics.csv` the entry ships), its score, the paper's score at the same step and the placement "
            "(`mrq_agents.paper.placement`), and the command that plays it. How the entries were trained and what "
            "a re-measured score promises: [the zoo](zoo.md).",
            "",
            summary_table(rows),
            "",
            *sections,
        ]
    )
    files.append(File.generated(config, PAGE, content=text))
    return files
