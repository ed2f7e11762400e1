"""The data, from files to the batches the device steps read.

input_pipeline    TFDS -> the host crop around each face box (tf.data) -> per-process batches
image_io          images, decoded with errors that name the file
landmark_io       .pts and .mat annotations
boxes             face boxes: box files, checks, overlaps (iou, nms, matching)
protocols         each dataset's published evaluation protocol
synthetic_faces/  the rendered faces with exact landmarks (the `synthetic_faces` builder)
"""
