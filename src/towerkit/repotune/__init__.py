"""repotune: a code repository -> grounded QA data -> LoRA fine-tune -> merged model -> evaluation."""
