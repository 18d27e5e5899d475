"""The simulated shop's catalogue: a category tree, items grouped by leaf category, and their popularity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from models_py.world.parameters import ShopParameters
from models_py.world.traffic import SHOP_START_MS

CSV_BODY = pacsv.WriteOptions(include_header=False, quoting_style="none")


@dataclass(frozen=True)
class Catalogue:
    """Items, their categories and popularity; shared by every chunk of visitors."""

    category_parent: np.ndarray  # -1 for roots
    category_root: np.ndarray
    category_conversion_logit: np.ndarray  # shift of conversion by the category's root
    item_ids: np.ndarray  # item id at each position; positions are grouped by leaf category
    item_category: np.ndarray  # category of the item at each position
    cum_weight: np.ndarray  # exclusive prefix sum of item popularity, by position (len n+1)
    leaf_ids: np.ndarray
    leaf_start: np.ndarray  # first position of each leaf's items
    leaf_end: np.ndarray
    leaf_taste_p: np.ndarray  # probability a visitor's taste is each leaf

    def sample_from_leaves(self, rng: np.random.Generator, leaf: np.ndarray) -> np.ndarray:
        lo = self.cum_weight[self.leaf_start[leaf]]
        hi = self.cum_weight[self.leaf_end[leaf]]
        u = lo + (hi - lo) * rng.random(leaf.size)
        pos = np.searchsorted(self.cum_weight, u, side="right") - 1
        return self.item_ids[np.minimum(pos, self.item_ids.size - 1)]

    def sample_popular(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = self.cum_weight[-1] * rng.random(n)
        pos = np.searchsorted(self.cum_weight, u, side="right") - 1
        return self.item_ids[np.minimum(pos, self.item_ids.size - 1)]


def build_catalogue(params: ShopParameters, rng: np.random.Generator) -> Catalogue:
    n_cat, n_root = params.categories, params.root_categories
    parent = np.full(n_cat, -1, dtype=np.int64)
    # Each later category hangs under an earlier one, biased to the top: a tree 3-5 levels deep.
    j = np.arange(n_root, n_cat)
    parent[n_root:] = np.floor(j * rng.random(j.size) ** 2).astype(np.int64)
    root = np.arange(n_cat)
    for c in range(n_root, n_cat):  # 1,669 categories, not events: parents come first
        root[c] = root[parent[c]]
    has_child = np.zeros(n_cat, dtype=bool)
    has_child[parent[parent >= 0]] = True
    leaf_ids = np.flatnonzero(~has_child)
    root_shift = rng.normal(0.0, params.category_conversion_sigma, n_cat)
    conversion_logit = root_shift[root]

    n_items = params.catalogue_items
    leaf_weight = rng.lognormal(0.0, 1.0, leaf_ids.size)
    item_leaf_slot = rng.choice(leaf_ids.size, size=n_items, p=leaf_weight / leaf_weight.sum())
    order = np.argsort(item_leaf_slot, kind="stable")
    item_leaf_slot = item_leaf_slot[order]
    popularity_rank = rng.permutation(n_items)
    weight = (popularity_rank + 10.0) ** -params.item_popularity_exponent
    item_ids = rng.permutation(n_items).astype(np.int64)
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    starts = np.searchsorted(item_leaf_slot, np.arange(leaf_ids.size), side="left")
    ends = np.searchsorted(item_leaf_slot, np.arange(leaf_ids.size), side="right")
    leaf_mass = cum[ends] - cum[starts]
    return Catalogue(
        category_parent=parent,
        category_root=root,
        category_conversion_logit=conversion_logit,
        item_ids=item_ids,
        item_category=leaf_ids[item_leaf_slot],
        cum_weight=cum,
        leaf_ids=leaf_ids,
        leaf_start=starts,
        leaf_end=ends,
        leaf_taste_p=leaf_mass / leaf_mass.sum(),
    )


def write_csv(table: pa.Table, path: Path) -> None:
    """CSV the way the real files look: a bare header line, no quotes, empty cells for nulls."""
    with open(path, "wb") as fh:
        fh.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, CSV_BODY)


def write_catalogue(out: Path, catalogue: Catalogue) -> None:
    """category_tree.csv and item_properties.csv in the real dataset's schema (one categoryid snapshot per item)."""
    parent = catalogue.category_parent
    write_csv(
        pa.table(
            {
                "categoryid": np.arange(parent.size, dtype=np.int64),
                "parentid": pa.array(parent, pa.int64(), mask=parent < 0),
            }
        ),
        out / "category_tree.csv",
    )
    n = catalogue.item_ids.size
    write_csv(
        pa.table(
            {
                "timestamp": np.full(n, SHOP_START_MS, np.int64),
                "itemid": catalogue.item_ids,
                "property": pa.array(["categoryid"] * n),
                "value": catalogue.item_category.astype(str),
            }
        ),
        out / "item_properties.csv",
    )
