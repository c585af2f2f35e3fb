"""The Datasets panel: datasets of the server, viewing and captioning their files, training on them."""
