"""mailer: press releases in, segmented newsletters out, every delivery accounted for."""

__version__ = "0.1.0"
