"""Built-in metrics: classification (Macro-F1, accuracy, invalid rate), ROUGE-L, BLEU-1..4 and
chrF (sacrebleu), CIDEr-D and METEOR 1.5 (pycocoevalcap), finding F1 and
report-label consistency (the finding extractor)."""
