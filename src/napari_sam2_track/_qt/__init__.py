"""napari dock widgets: thin Qt layers over :mod:`napari_sam2_track.session`.

Qt is imported through qtpy only; torch and sam2 are imported when a model is loaded.
"""
