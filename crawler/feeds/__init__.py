"""Feed exports: items written to several outputs at once, each resumable exactly once."""
from .feed import Feed
from .spec import STDOUT, FeedSpec, check_new, from_cli, from_settings, identity, uri_params

__all__ = ["STDOUT", "Feed", "FeedSpec", "check_new", "from_cli", "from_settings", "identity",
           "uri_params"]
