//! Segmentation evaluation metrics.
