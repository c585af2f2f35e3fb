"""Trainers the embedded server runs as subprocesses (`training-studio train <name> ...`).

`__main__.main(argv)` is the command line; `builtin` is the built-in linear VAE. Nothing here imports Qt
or the server: a trainer only reads a dataset folder, prints progress lines and writes its outputs.
"""
