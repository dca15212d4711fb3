"""The disentangler adapter, its config and its files. Importing the package registers every route's module
class (`SavedAdapter.ROUTE_CLASSES`), so a saved adapter of any route loads as its own class."""

from clap.adapter import mask_decoder, negation  # noqa: F401  (register the segmentation and negation routes)
