"""The Models panel: trained models of the server, their samples image, checkpoint download, delete."""
