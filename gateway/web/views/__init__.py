"""One module per page family: auth (login/logout), queue, review (one item), audit."""
