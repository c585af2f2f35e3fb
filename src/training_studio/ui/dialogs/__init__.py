"""Dialogs of the main window: Settings, Connect to server, About."""
