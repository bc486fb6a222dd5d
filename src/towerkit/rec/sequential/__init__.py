"""Sequential recommendation: next-item data (``data.SeqDataset``), SASRec, leave-one-out
evaluation, and the UR4Rec text / multimodal retrievers fused with SASRec."""
