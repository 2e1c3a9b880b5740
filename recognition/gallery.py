"""1:N search over enrolled templates of one face model.

Exact numpy search: 10k templates take well under a millisecond per probe. Callers use
only add/remove/nearest, so an approximate index can replace this class unchanged. A
gallery holds one model's templates and measures with that model's distance: a template of
another model (another size) is refused, never compared.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hit:
    citizen_id: object     # whatever the gallery's owner names citizens by (a device: their key)
    distance: float


class Gallery:
    """Templates by citizen id; a citizen may have several (enrolment + confirmed visits)."""

    def __init__(self, model):
        self.model = model
        self._ids = np.empty(0, dtype=object)
        self._matrix = np.empty((0, model.dims), dtype=np.float32)
        self._citizens = None

    @classmethod
    def from_arrays(cls, model, citizen_ids, matrix):
        """A gallery built in one step from n citizen ids and an n x dims matrix (row i is
        a template of citizen_ids[i]); adding 10k templates one by one copies the matrix 10k times."""
        gallery = cls(model)
        gallery._ids = np.asarray(list(citizen_ids), dtype=object).reshape(-1)
        gallery._matrix = np.asarray(matrix, dtype=np.float32).reshape(len(gallery._ids), model.dims)
        return gallery

    def __len__(self):
        """Citizens (not templates) in the gallery; cached, it is asked for every probe."""
        if self._citizens is None:
            self._citizens = len(np.unique(self._ids))
        return self._citizens

    def add(self, citizen_id, encoding):
        vector = np.asarray(encoding, np.float32).reshape(1, -1)
        if vector.shape[1] != self.model.dims:
            raise ValueError(f"a {self.model.name} gallery holds {self.model.dims}-value templates,"
                             f" not {vector.shape[1]}")
        self._ids = np.append(self._ids, np.array([citizen_id], dtype=object))
        self._citizens = None
        self._matrix = np.vstack([self._matrix, vector])

    def remove(self, citizen_id):
        keep = self._ids != citizen_id
        self._ids, self._matrix = self._ids[keep], self._matrix[keep]
        self._citizens = None

    def nearest(self, encoding, k=5):
        """The k closest *citizens* (each once, at their closest template), closest first."""
        if not len(self._ids):
            return []
        distances = self.model.distances(self._matrix, encoding)
        hits, seen = [], set()
        for i in np.argsort(distances, kind="stable"):
            if self._ids[i] not in seen:
                seen.add(self._ids[i])
                hits.append(Hit(_plain(self._ids[i]), float(distances[i])))
                if len(hits) == k:
                    break
        return hits

    def nearest_two(self, encoding):
        """(best, runner_up): the closest citizen and the closest *other* citizen, or None.

        The runner-up is another person, never a second template of the best one: the
        margin between them is what tells a clear match from a lookalike.
        """
        hits = self.nearest(encoding, 2) + [None, None]
        return hits[0], hits[1]


def _plain(value):
    """A numpy scalar id as the plain Python value it was given as."""
    return value.item() if hasattr(value, "item") else value
