"""The sample data: a simulated city (world), a month of its offices' files (month, written by
files), and a generated province of the same forms (province). A tool beside the product: the
flow never imports it, and it needs the optional extra `sample` (xlwt, for .xls)."""
from flows.tools.sample.month import generate_sample
from flows.tools.sample.province import TILE_VILLAGES, generate_province, province_tree, tiles

__all__ = ["generate_sample", "generate_province", "province_tree", "tiles", "TILE_VILLAGES"]
