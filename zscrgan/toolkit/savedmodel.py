"""A trained model outside the trainer (docs/algorithm.md §11.4): the SavedModel that
`zscrgan export` writes and `zscrgan retrieve` reads, and the query noise retrieve draws.

MODEL_DIR holds a TensorFlow SavedModel with two serving signatures and `zscrgan.yml`:
    embed_text(text (N, T), eps (N, E), z (N, Z)) -> {"embedding": (N, E)}   l2n(F(G(c, z)))
    embed_image(image (N, I))                     -> {"embedding": (N, E)}   l2n(F(v))
TensorFlow is imported only by the functions that need it, so a folder that is not an
export is refused before TensorFlow starts.
"""
import os

import numpy as np

from zscrgan.errors import BadInput
from zscrgan.files import read_yaml
from zscrgan.results.run import CONFIG_FILE, Run

FORMAT = "zscrgan-export-1"
META = "zscrgan.yml"
CHECK_NOISE = "check_noise.npz"
CHUNK = 1024  # rows per call of a signature

# How query noise is drawn; zscrgan.yml repeats these words for users of the SavedModel alone.
NOISE = {
    "eps": "shape (N, E), truncated standard normal: mean 0, stddev 1, values beyond 2 stddevs "
           "redrawn (tf.random.Generator.truncated_normal)",
    "z": "shape (N, Z), standard normal: mean 0, stddev 1, not truncated (tf.random.Generator.normal)",
    "trainer": "evaluation draws both from the run's tf.random.Generator (seeded with the config's seed, "
               "advanced by training), for each block of eval_chunk queries in query order: eps, then z",
    "retrieve": "retrieve --seed S: g = tf.random.Generator.from_seed(S, alg='philox'); for each of the "
                "--samples draws in turn: eps = g.truncated_normal([N, E]), then z = g.normal([N, Z]), N all "
                "queries at once",
    "samples": "retrieve --samples S embeds every query with S draws, averages the S embeddings and "
               "L2-normalises the mean",
    "check": f"{CHECK_NOISE} holds the eps (N, E) and z (N, Z) of the export's self-check, the dataset's "
             "unseen texts in evaluation order: `retrieve MODEL_DIR --dataset D --noise` with it replays it",
}


class ExportError(BadInput):
    """A folder that is not an export, or inputs that do not fit it."""


def embedder(nets):
    """A tf.Module with the two signatures over the generator (with CA) and the CSEM of `nets`."""
    import tensorflow as tf
    from zscrgan.model.evaluation import embed_images, embed_texts

    G, F = nets.generator, nets.csem
    T, I, E, Z = G.text_dim, G.image_dim, G.embed_dim, G.z_dim

    class Embedder(tf.Module):
        def __init__(self):
            super().__init__(name="zscrgan_embedder")
            self.generator, self.csem = G, F  # the critic stays behind: retrieval does not use it
            self.embed_text = tf.function(self._text, input_signature=[
                tf.TensorSpec([None, T], tf.float32, "text"), tf.TensorSpec([None, E], tf.float32, "eps"),
                tf.TensorSpec([None, Z], tf.float32, "z")])
            self.embed_image = tf.function(self._image, input_signature=[
                tf.TensorSpec([None, I], tf.float32, "image")])

        def _text(self, text, eps, z):
            return {"embedding": embed_texts(self, text, eps, z)}  # the Evaluator's query path

        def _image(self, image):
            return {"embedding": embed_images(self, image)}

    return Embedder()


def save(module, folder):
    """Write `module` (from `embedder`) as a SavedModel with its two signatures."""
    import tensorflow as tf
    tf.saved_model.save(module, folder, signatures={"embed_text": module.embed_text,
                                                    "embed_image": module.embed_image})


def read_meta(folder):
    """zscrgan.yml of an export folder, checked; ExportError when the folder is not an export."""
    path = os.path.join(folder, META)
    if not os.path.isdir(folder):
        raise ExportError(f"model folder {folder} not found (write one with `zscrgan export`)")
    meta = read_yaml(path, "export description", ExportError)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT \
            or not os.path.isfile(os.path.join(folder, "saved_model.pb")):
        raise ExportError(f"{folder} is {_what(folder)}not a zscrgan export (it needs saved_model.pb and a {META} "
                          f"of format {FORMAT}): write one into a new folder with "
                          f"`zscrgan export {_run_flags(folder)} --out NEW_FOLDER`, then give NEW_FOLDER")
    return meta


def _what(folder):
    return "a run folder, " if os.path.isfile(os.path.join(folder, CONFIG_FILE)) else ""


def _run_flags(folder):
    """The export flags of the run whose logs folder this is, else placeholders."""
    try:
        flags = Run.at(folder).flags() if _what(folder) else None
    except BadInput:  # an unreadable config.yml: the placeholders still say what to give
        flags = None
    return flags or "--dataset D [--run_name N] [--logs_dir DIR]"


class Model:
    """An export loaded with TensorFlow: embeds texts and images `CHUNK` rows per call."""

    def __init__(self, folder, meta=None):
        """meta: zscrgan.yml's content when already read (the export's self-check passes {})."""
        import tensorflow as tf

        from zscrgan.run import devices
        self.meta = read_meta(folder) if meta is None else meta
        self.folder = folder
        if self.meta.get("config") is not None:  # memory growth, and TF32 as the run had it
            devices.configure(self.meta["config"])
        self.saved = tf.saved_model.load(folder)
        self.text_fn = self.saved.signatures["embed_text"]
        self.image_fn = self.saved.signatures["embed_image"]

    def embed_text(self, text, eps, z):
        """text (N, T), eps (N, E), z (N, Z) -> embeddings float32 (N, E)."""
        parts = [self.text_fn(text=text[i:i + CHUNK], eps=eps[i:i + CHUNK], z=z[i:i + CHUNK])["embedding"]
                 for i in range(0, len(text), CHUNK)]
        return np.concatenate([p.numpy() for p in parts])

    def embed_image(self, image):
        """image (N, I) -> embeddings float32 (N, E)."""
        return np.concatenate([self.image_fn(image=image[i:i + CHUNK])["embedding"].numpy()
                               for i in range(0, len(image), CHUNK)])

    def embed_queries(self, text, eps, z):
        """Queries embedded with S noise draws, averaged, L2-normalised: eps (S, N, E), z (S, N, Z)
        -> (N, E); with S = 1 exactly embed_text's output."""
        if len(eps) == 1:
            return self.embed_text(text, eps[0], z[0])
        from zscrgan.model.ranking import l2_normalize
        mean = np.mean([self.embed_text(text, e, zz) for e, zz in zip(eps, z)], axis=0, dtype=np.float64)
        return l2_normalize(mean).astype(np.float32)


def draw_noise(seed, n, embed_dim, z_dim, samples=1):
    """(eps (S, n, E), z (S, n, Z)) float32, drawn as NOISE["retrieve"] says."""
    import tensorflow as tf
    from zscrgan.model.evaluation import query_noise
    g = tf.random.Generator.from_seed(seed, alg="philox")
    draws = [query_noise(g, n, embed_dim, z_dim) for _ in range(samples)]
    return np.stack([eps.numpy() for eps, _ in draws]), np.stack([z.numpy() for _, z in draws])
