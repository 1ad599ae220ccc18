"""patronload: university people data to Alma SIS user XML, delivered and explained."""

__version__ = "0.1.0"
