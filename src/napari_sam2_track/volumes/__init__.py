"""Tracking through volumes: the slices along one axis are SAM 2's frames.

Qt-free. Sources live in :mod:`napari_sam2_track.sources` (volume readers and geometry); this
package holds what turns a volume (or a 3D + time series) into propagation passes and maps the
results back into the project's ``(t, z, y, x)`` labels.
"""
