"""The History tab (issue 16): every job of the server, paged from the server as the user scrolls, filtered
and sorted by the server; the store owns the queries, the model the rows, the panel the view."""
