"""What the commands share, as library (a command imports these, never another command).

plots             landmark overlays, CED curves, prediction grids, heatmap figures
predictor         the batched Predictor: image files and boxes -> sub-pixel landmarks
detectors         face detectors that ship their models, and their calibration to the training box
video             frames in and out; `track`, detect-then-follow through a clip
smoothing         the One-Euro filter
prediction_files  predict's records (.json, .jsonl, .csv) in input order, and its overlays
artefacts         the network and a decoder as one StableHLO, ONNX, TFLite or SavedModel file
"""
