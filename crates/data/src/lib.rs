//! semaug-data: images in and out, datasets, masks, classical augmentations, writers.
