"""Zoo jobs without Ray: plan the models, run one model against storage, summarise; incremental runs."""
