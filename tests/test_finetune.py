"""Fine-tuning: which layers transfer, freezing, the CLI run folder (resumable, exportable, with provenance), errors."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers.model_folders import TINY, make_model_folder
from mrq_agents.cli import app
from mrq_agents.config import MRQConfig
from mrq_agents.envs import EnvSpec
from mrq_agents.errors import ConfigError
from mrq_agents.learner import MRQLearner, build_networks
from mrq_agents.replay import ReplayBuffer
from mrq_agents.training.finetune import finetune, load_pretrained
from mrq_agents.training.transfer import FinetuneSchedule, plan_transfer

runner = CliRunner()
VECTOR_3 = EnvSpec(obs_shape=(3,), pixels=False, frame_stack=1, discrete=False, action_dim=1)
VECTOR_4_DISCRETE = EnvSpec(obs_shape=(4,), pixels=False, frame_stack=1, discrete=True, action_dim=2)
PIXELS_9 = EnvSpec(obs_shape=(9, 84, 84), pixels=True, frame_stack=3, discrete=False, action_dim=1)
PIXELS_4 = EnvSpec(obs_shape=(4, 84, 84), pixels=True, frame_stack=4, discrete=True, action_dim=6)


def source_weights(spec, seed=0):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in build_networks(spec, TINY).state_dict().items()}


def transferred_learner(source_spec, target_spec, freeze="none"):
    source = source_weights(source_spec)
    transfer = plan_transfer(source, target_spec, TINY, freeze, {"source": "test"})
    torch.manual_seed(123)  # the new networks' own initialisation differs from the source's
    nets = build_networks(target_spec, TINY)
    transfer.load_into(nets)
    FinetuneSchedule(frozen=transfer.frozen).freeze(nets)
    return source, transfer, MRQLearner(target_spec, TINY, "cpu", nets=nets)


def equal_to_source(learner, source):
    return {k for k, v in learner.nets.state_dict().items() if k in source and torch.equal(v, source[k])}


def test_same_spaces_transfer_everything_online_and_target():
    source, transfer, learner = transferred_learner(VECTOR_3, VECTOR_3)
    assert transfer.new_layers == ()
    assert equal_to_source(learner, source) == set(source)
    for k, v in learner.target.state_dict().items():
        assert torch.equal(v, source[k])


def test_different_spaces_reinitialise_only_the_raw_input_and_output_layers():
    source, transfer, learner = transferred_learner(VECTOR_3, VECTOR_4_DISCRETE)
    assert set(transfer.new_layers) == {"encoder.zs_mlp.net.0", "encoder.za", "policy.net.net.6"}
    same = equal_to_source(learner, source)
    for name in learner.nets.state_dict():
        layer, kind = name.rsplit(".", 1)
        if layer in transfer.new_layers:
            assert kind == "bias" or name not in same, name  # fresh weights (biases start at zero either way)
        else:
            assert name in same, name


def test_vector_to_pixels_keeps_only_downstream_layers():
    source, transfer, learner = transferred_learner(VECTOR_3, PIXELS_9)
    new = set(transfer.new_layers)
    assert {name for name in new if name.startswith("encoder.pixel_trunk")} and "encoder.zs_head" in new
    assert not any(name.startswith("encoder.zs_mlp") for name in transfer.kept_layers)  # the vector trunk is gone
    assert {"encoder.zsa.net.0", "encoder.model", "value.q1.head", "policy.net.net.0"} <= set(transfer.kept_layers)


def test_other_channel_count_restarts_the_whole_conv_stack():
    source, transfer, learner = transferred_learner(PIXELS_9, PIXELS_4)
    convs = [name for name in transfer.new_layers if name.startswith("encoder.pixel_trunk")]
    assert len(convs) == 4  # convs 1-3 have fitting shapes but follow a new first layer
    assert "encoder.zs_head" in transfer.kept_layers  # same 84x84 frames: same flattened size


def test_freeze_encoder_keeps_transferred_encoder_layers_fixed():
    source, transfer, learner = transferred_learner(VECTOR_3, VECTOR_4_DISCRETE, freeze="encoder")
    assert transfer.frozen and all(n.startswith("encoder.") for n in transfer.frozen)
    assert "encoder.za.weight" not in transfer.frozen  # re-initialised layers still learn
    buffer = ReplayBuffer(VECTOR_4_DISCRETE, 500, (TINY.enc_horizon, TINY.q_horizon), device="cpu")
    rng = np.random.default_rng(0)
    buffer.start_episode(rng.normal(size=4).astype(np.float32))
    for t in range(60):
        buffer.add(
            int(rng.integers(2)), float(rng.normal()), False, t % 20 == 19, rng.normal(size=4).astype(np.float32)
        )
        if t % 20 == 19:
            buffer.start_episode(rng.normal(size=4).astype(np.float32))
    before = {k: v.clone() for k, v in learner.nets.state_dict().items()}
    learner.update(buffer)
    after = learner.nets.state_dict()
    for name in transfer.frozen:
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["encoder.za.weight"], after["encoder.za.weight"])


def test_bad_freeze_choice():
    with pytest.raises(Exception, match="--freeze must be one of"):
        plan_transfer(source_weights(VECTOR_3), VECTOR_3, TINY, "value", {})


SMALL = [
    "--steps",
    "300",
    "--eval-every",
    "150",
    "--eval-episodes",
    "1",
    "--set",
    "batch_size=16",
    "--set",
    "target_update_freq=20",
    "--set",
    "buffer_size=5000",
]


def test_cli_finetune_run_folder_is_resumable_exportable_and_records_provenance(tmp_path):
    source, _, _ = make_model_folder(tmp_path / "source", "Pendulum-v1")
    out = tmp_path / "ft"
    result = runner.invoke(
        app,
        ["finetune", str(source), "--env", "InvertedPendulum-v4", "--out", str(out), "--warmup-steps", "100", *SMALL],
    )
    assert result.exit_code == 0, result.output
    assert "kept" in result.output and "re-initialised" in result.output and "encoder.zs_mlp.net.0" in result.output
    meta = json.loads((out / "config.json").read_text())
    provenance = meta["finetuned_from"]
    assert provenance["source"] == str(source) and provenance["source_env_id"] == "Pendulum-v1"
    assert len(provenance["sha256"]) == 64 and "encoder.zs_mlp.net.0" in provenance["reinitialised_layers"]
    assert meta["algorithm"]["warmup_steps"] == 100 and meta["algorithm"]["zs_dim"] == TINY.zs_dim
    assert (out / "checkpoint.safetensors").exists()
    resumed = runner.invoke(app, ["train", "InvertedPendulum-v4", "--out", str(out), "--resume", "--steps", "450"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "config.json").read_text())["finetuned_from"] == provenance
    exported = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "export"), "--episodes", "1"])
    assert exported.exit_code == 0, exported.output


def test_default_warmup_is_the_source_configs(tmp_path):
    source, _, _ = make_model_folder(tmp_path / "source", "Pendulum-v1")
    meta = json.loads((source / "config.json").read_text())
    meta["algorithm"]["warmup_steps"] = 120  # the source was trained with a 120-step warm-up
    (source / "config.json").write_text(json.dumps(meta))
    out = tmp_path / "ft"
    result = runner.invoke(app, ["finetune", str(source), "--env", "Pendulum-v1", "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["algorithm"]["warmup_steps"] == 120


@pytest.mark.parametrize(
    "args, message",
    [
        (["finetune", "NOT_A_MODEL", "--env", "Pendulum-v1"], "is not an MR.Q model config"),
        (["finetune", "SOURCE", "--env", "Nope-v3"], "unknown env id 'Nope-v3'"),
        (["finetune", "SOURCE", "--env", "Pendulum-v1", "--freeze", "value"], "--freeze must be one of"),
    ],
)
def test_finetune_errors_are_one_line(args, message, tmp_path):
    source, _, _ = make_model_folder(tmp_path / "source", "Pendulum-v1")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    args = [str(source) if a == "SOURCE" else str(tmp_path / "other") if a == "NOT_A_MODEL" else a for a in args]
    result = runner.invoke(app, [*args, "--steps", "100", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_finetune_from_a_zoo_id(tmp_path, offline_hub):
    out = tmp_path / "ft"
    result = runner.invoke(
        app,
        [
            "finetune",
            "mrq-agents/mrq-InvertedPendulum-v4",
            "--env",
            "Pendulum-v1",
            "--out",
            str(out),
            "--warmup-steps",
            "50",
            *SMALL,
        ],
    )
    assert result.exit_code == 0, result.output
    provenance = json.loads((out / "config.json").read_text())["finetuned_from"]
    assert provenance["source"] == "mrq-agents/mrq-InvertedPendulum-v4"
    assert provenance["reinitialised_layers"] == ["encoder.zs_mlp.net.0"]  # obs 4 -> 3; action 1 -> 1


def test_finetune_starts_from_a_compact_export_in_float32(tmp_path):
    from mrq_agents import Policy
    from mrq_agents.actor_torch import is_acting_tensor

    folder, learner, _ = make_model_folder(tmp_path / "run", "Pendulum-v1")
    compact = Policy.from_pretrained(folder).save_pretrained(tmp_path / "compact", compact=True)
    trainer = finetune(load_pretrained(compact), "Pendulum-v1", steps=10, out=tmp_path / "ft", log=lambda *_: None)
    started = trainer.learner.nets.state_dict()
    for name, value in learner.nets.state_dict().items():
        assert started[name].dtype == torch.float32
        assert torch.equal(started[name], value if is_acting_tensor(name) else value.half().float()), name


@pytest.mark.parametrize("warmup_actions, policy_acts", [("random", 0), ("policy", 20)])
def test_warmup_actions_come_from_the_policy_on_request(tmp_path, pendulum_model, warmup_actions, policy_acts):
    """`--warmup-actions policy`: the warm-up's actions are the pretrained policy's, with the exploration noise."""

    trainer = finetune(
        load_pretrained(pendulum_model[0]),
        "Pendulum-v1",
        steps=20,
        out=tmp_path / "ft",
        warmup_steps=100,
        eval_every=20,
        eval_episodes=1,
        warmup_actions=warmup_actions,
        log=lambda *_: None,
    )
    act, explored = trainer.learner.act, []
    trainer.learner.act = lambda obs, explore, **kw: (explored.append(explore), act(obs, explore, **kw))[1]
    trainer.train()
    assert explored.count(True) == policy_acts
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["run"]["warmup_actions"] == warmup_actions


def test_by_default_the_warmup_acts_with_the_pretrained_policy_and_the_encoder_learns_slower(tmp_path, pendulum_model):
    """`mrq finetune` and `finetune()` without options warm up with the pretrained policy and train the encoder at
    a tenth of the source's rate; `mrq train` keeps the paper's uniform random warm-up."""
    from mrq_agents.training.run_config import RunConfig

    source = load_pretrained(pendulum_model[0])
    tenth = float(f"{source.config.enc_lr / 10:.6g}")
    trainer = finetune(source, "Pendulum-v1", 10, tmp_path / "ft", log=lambda *_: None)
    assert trainer.run.warmup_actions == "policy" and trainer.algo.enc_lr == tenth
    assert trainer.learner.encoder_opt.param_groups[0]["lr"] == tenth
    trainer.close()
    args = ["finetune", str(pendulum_model[0]), "--env", "Pendulum-v1", "--steps", "10", "--out", str(tmp_path / "cli")]
    args += ["--eval-every", "10", "--eval-episodes", "1", "--warmup-steps", "5", "--set", "batch_size=4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert saved["run"]["warmup_actions"] == "policy" and saved["algorithm"]["enc_lr"] == tenth
    assert RunConfig("Pendulum-v1", steps=10).warmup_actions == "random"


@pytest.mark.parametrize("hold", ["hold_policy", "hold_encoder"])
def test_a_hold_reaches_the_learner_and_survives_a_resume(tmp_path, pendulum_model, hold):
    """`--hold-policy N` and `--hold-encoder N` are run settings: config.json records them and `mrq train
    --resume` keeps them."""
    from mrq_agents.training.trainer import build_trainer

    options = dict(warmup_steps=10, eval_every=15, eval_episodes=1, log=lambda *_: None)
    trainer = finetune(load_pretrained(pendulum_model[0]), "Pendulum-v1", 15, tmp_path / "ft", **{hold: 7}, **options)
    assert getattr(trainer.schedule, hold) == 7
    trainer.train()
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["run"][hold] == 7
    resumed = build_trainer("Pendulum-v1", tmp_path / "ft", resume=True, steps=20, log=lambda *_: None)
    assert getattr(resumed.schedule, hold) == 7 and resumed.learner.num_updates == 5
    resumed.close()


def test_convert_critic_units_reads_the_source_scale_and_survives_a_resume(tmp_path):
    """`--critic-units convert`: the source's reward scale comes from the last row of its metrics.csv, reaches the
    learner, is recorded in config.json (run and provenance) and is kept by `mrq train --resume`."""
    from mrq_agents.training.trainer import build_trainer

    folder, _, _ = make_model_folder(tmp_path / "source", "Pendulum-v1")
    (folder / "metrics.csv").write_text("step,eval_return_mean,reward_scale\n5,-1.0,0.5\n10,-1.0,2.5\n")
    pretrained = load_pretrained(folder)
    assert pretrained.reward_scale == 2.5
    options = dict(warmup_steps=10, eval_every=15, eval_episodes=1, log=lambda *_: None)
    trainer = finetune(pretrained, "Pendulum-v1", 15, tmp_path / "ft", critic_units="convert", **options)
    assert trainer.schedule.source_reward_scale == 2.5
    trainer.train()
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["run"]["source_reward_scale"] == 2.5
    assert config["finetuned_from"]["critic_units"] == "convert"
    resumed = build_trainer("Pendulum-v1", tmp_path / "ft", resume=True, steps=20, log=lambda *_: None)
    assert resumed.schedule.source_reward_scale == 2.5 and resumed.learner.num_updates == 5
    resumed.close()
    kept = finetune(pretrained, "Pendulum-v1", 15, tmp_path / "kept", **options)
    assert kept.schedule is None
    kept.close()


@pytest.mark.parametrize(
    "metrics", [None, "step,eval_return_mean\n5,1.0\n", "step,reward_scale\n5,nan\n", "step,reward_scale\n5,x\n"]
)
def test_an_unknown_source_scale_keeps_the_critics_and_says_so(tmp_path, metrics):
    """No metrics.csv, no reward_scale column, or a number that is not a positive scale: nothing to convert from;
    the log says the critics keep their units."""

    folder, _, _ = make_model_folder(tmp_path / "source", "Pendulum-v1")
    if metrics is not None:
        (folder / "metrics.csv").write_text(metrics)
    lines = []
    trainer = finetune(
        load_pretrained(folder), "Pendulum-v1", 10, tmp_path / "ft", critic_units="convert", log=lines.append
    )
    assert trainer.schedule is None
    assert any("reward scale is unknown" in line and "critics keep their units" in line for line in lines)
    trainer.close()


def test_unknown_critic_units_are_one_line(tmp_path, pendulum_model):
    args = ["finetune", str(pendulum_model[0]), "--env", "Pendulum-v1", "--steps", "10", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--critic-units", "scale"])
    assert result.exit_code == 2 and "--critic-units must be one of ('keep', 'convert'), got 'scale'" in result.stderr


def test_encoder_lr_scale_multiplies_the_source_rate_unless_set_gives_one():
    """1e-4 x 0.1 is 1e-05 to the digit (not 1.0000000000000002e-05); other `--set` values apply alongside;
    `--set enc_lr=3e-5` wins over the scale; a scale of 1 leaves the config as it is."""
    from mrq_agents.training.finetune import finetune_config

    source = MRQConfig().with_overrides(["enc_lr=1e-4"])
    assert finetune_config(source, 0.1, []).enc_lr == 1e-05
    scaled = finetune_config(source, 0.5, ["batch_size=4"])
    assert (scaled.enc_lr, scaled.batch_size) == (5e-05, 4)
    assert finetune_config(source, 0.1, [" enc_lr = 3e-5"]).enc_lr == 3e-05
    assert finetune_config(source, 1.0, []) == source


def test_warmup_steps_wins_over_set_and_none_keeps_the_sources():
    from mrq_agents.training.finetune import finetune_config

    source = MRQConfig().with_overrides(["warmup_steps=120"])
    assert finetune_config(source, 1.0, []).warmup_steps == 120
    assert finetune_config(source, 1.0, ["warmup_steps=50"]).warmup_steps == 50
    assert finetune_config(source, 1.0, ["warmup_steps=50"], warmup_steps=70).warmup_steps == 70


@pytest.mark.parametrize("scale", [0.0, -0.1, float("nan"), float("inf")])
def test_a_bad_encoder_lr_scale_is_a_config_error(scale):
    from mrq_agents.training.finetune import finetune_config

    with pytest.raises(ConfigError, match="--encoder-lr-scale must be a positive number"):
        finetune_config(MRQConfig(), scale, [])


def test_finetuned_from_records_the_encoder_rate_the_run_got(tmp_path, pendulum_model):
    """`finetuned_from.encoder_lr_scale` is the run's `enc_lr` over the source's: 0.1 by default, and what
    `--set enc_lr` makes of it when that overrides the scale (the source's 1e-4 to 3e-5 is 0.3)."""

    source = load_pretrained(pendulum_model[0])
    options = dict(warmup_steps=10, log=lambda *_: None)
    assert source.config.enc_lr == 1e-4
    default = finetune(source, "Pendulum-v1", 15, tmp_path / "a", **options)
    assert default.provenance["encoder_lr_scale"] == 0.1 and "source_reward_scale" not in default.provenance
    default.close()
    overridden = finetune(source, "Pendulum-v1", 15, tmp_path / "b", overrides=["enc_lr=3e-5"], **options)
    assert overridden.algo.enc_lr == 3e-05 and overridden.provenance["encoder_lr_scale"] == 0.3
    overridden.close()


def test_encoder_lr_scale_reaches_the_optimizer_and_survives_a_resume(tmp_path, pendulum_model):
    """The scaled rate is the run's algorithm config (config.json), so the encoder's optimizer uses it and
    `mrq train --resume` keeps it; `finetuned_from` records the scale."""
    from mrq_agents.training.trainer import build_trainer

    source = load_pretrained(pendulum_model[0])
    options = dict(warmup_steps=10, eval_every=15, eval_episodes=1, log=lambda *_: None)
    trainer = finetune(source, "Pendulum-v1", 15, tmp_path / "ft", encoder_lr_scale=0.5, **options)
    want = float(f"{source.config.enc_lr * 0.5:.6g}")
    assert trainer.learner.encoder_opt.param_groups[0]["lr"] == want
    trainer.train()
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert saved["algorithm"]["enc_lr"] == want and saved["finetuned_from"]["encoder_lr_scale"] == 0.5
    resumed = build_trainer("Pendulum-v1", tmp_path / "ft", resume=True, steps=20, log=lambda *_: None)
    assert resumed.learner.encoder_opt.param_groups[0]["lr"] == want
    resumed.close()


def test_a_bad_encoder_lr_scale_is_one_line(tmp_path, pendulum_model):
    args = ["finetune", str(pendulum_model[0]), "--env", "Pendulum-v1", "--steps", "10", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--encoder-lr-scale", "0"])
    assert result.exit_code == 2 and "--encoder-lr-scale must be a positive number, got 0.0" in result.stderr


@pytest.mark.parametrize("option", ["--hold-policy", "--hold-encoder"])
def test_a_negative_hold_is_one_line(tmp_path, pendulum_model, option):
    args = ["finetune", str(pendulum_model[0]), "--env", "Pendulum-v1", "--steps", "10", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, option, "-1"])
    assert result.exit_code == 2 and f"{option} must be >= 0 updates, got -1" in result.stderr


def test_unknown_warmup_actions_are_one_line(tmp_path, pendulum_model):
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            str(pendulum_model[0]),
            "--env",
            "Pendulum-v1",
            "--steps",
            "10",
            "--out",
            str(tmp_path / "ft"),
            "--warmup-actions",
            "expert",
        ],
    )
    assert result.exit_code == 2 and "unknown warm-up actions 'expert': choose one of policy, random" in result.stderr
