"""Test helpers shared by the whole suite: a real server subprocess, image makers."""
