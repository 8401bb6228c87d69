"""Your spiders live here: every Spider subclass with a `name` is found by that name."""
