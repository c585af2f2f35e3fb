"""Package data shipped with the app (icons and their licence); read it with importlib.resources."""
