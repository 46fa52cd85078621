"""What several tools share: their common flags, figures, and the SavedModel of a trained model.
Knows nothing of any one tool: a need two tools share moves here, never into one of them."""
