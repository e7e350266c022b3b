"""Helpers shared by the tests: model folders, replay filling and tiny configs, a Hub stand-in, a user's shell."""
