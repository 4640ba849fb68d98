import json

import numpy as np
from sklearn.cluster import KMeans

from speechinstruct import kmeans
from speechinstruct.kmeans import Assigner, KMeansConfig, centroids_hash


def test_assignment_equals_sklearn_predict():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((2000, 39)).astype(np.float32) * 3
    model = KMeans(n_clusters=50, n_init=1, random_state=0).fit(data)
    queries = rng.standard_normal((5000, 39)).astype(np.float32) * 3
    ours = Assigner(model.cluster_centers_)(queries)
    np.testing.assert_array_equal(ours, model.predict(queries))


def test_learn_and_save(tmp_path):
    rng = np.random.default_rng(1)
    blobs = np.concatenate([rng.normal(c, 0.1, (200, 2)) for c in (0, 5, 10)]).astype(np.float32)
    centroids, inertia = kmeans.learn(blobs, 3, KMeansConfig(n_init=3))
    assert sorted(np.round(centroids[:, 0]).tolist()) == [0, 5, 10]
    assert 0 < inertia < 600 * 2 * 0.1**2 * 2
    info = kmeans.save(tmp_path / "km.npy", centroids, {"extractor": "mfcc"})
    np.testing.assert_array_equal(np.load(tmp_path / "km.npy"), centroids)
    sidecar = json.loads((tmp_path / "km.json").read_text())
    assert sidecar == info and sidecar["k"] == 3
    assert sidecar["centroids_hash"] == centroids_hash(centroids)
