"""Procedural 68-point faces (iBUG order) and their renderer: the `synthetic_faces` data set.

`python -m sphm_jax.synthetic` draws a sample sheet and writes the test clip.

`sample_landmarks` draws landmark sets alone (the roundtrip report);
`sample_params` + `render` (or `render_face`) draw face images whose
features pass exactly through their landmarks. The modules, in the order
a face is made:

  template   the 68-point template face and random landmark sets
  face       FaceParams, the deformed landmarks and their projection
  sampling   random FaceParams that fit their image
  raster     exact area coverage of polygons, curves and bands; compositing
  texture    background, grain, shading, lighting, blur, noise
  renderer   FaceParams -> Face, each feature through its landmarks
  clip       the test clip: one face moving smoothly, exact landmarks per frame
"""

from sphm_jax.data.synthetic_faces.clip import clip_params, render_clip, write_clip
from sphm_jax.data.synthetic_faces.face import FaceParams, clean, project, shape_landmarks
from sphm_jax.data.synthetic_faces.raster import SAMPLES, catmull_rom, coverage, ellipse, stroke
from sphm_jax.data.synthetic_faces.renderer import Face, render, render_face
from sphm_jax.data.synthetic_faces.sampling import FACE_WIDTH, sample_params
from sphm_jax.data.synthetic_faces.template import face_template_68, sample_landmarks

__all__ = [
    "FACE_WIDTH",
    "SAMPLES",
    "Face",
    "FaceParams",
    "catmull_rom",
    "clean",
    "clip_params",
    "coverage",
    "ellipse",
    "face_template_68",
    "project",
    "render",
    "render_clip",
    "render_face",
    "sample_landmarks",
    "sample_params",
    "shape_landmarks",
    "stroke",
    "write_clip",
]
