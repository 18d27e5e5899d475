{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replacing_as_of_dates(),
        partition_by=['as_of_date'],
        post_hook="{{ prune_as_of_dates(this, keep_newest=2) }}",
    )
}}
{#- How often each item's viewers bought it, before each cut-off this build makes (macro conversions_folded). -#}
{{ conversions_folded(ref('int_visitor_item_days_rolled_up'), 'item_id', 'item_conversion_rate') }}
