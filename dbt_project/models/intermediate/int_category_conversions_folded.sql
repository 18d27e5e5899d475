{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replacing_as_of_dates(),
        partition_by=['as_of_date'],
        post_hook="{{ prune_as_of_dates(this, keep_newest=2) }}",
    )
}}
{#- How often each category's viewers bought in it, before each cut-off this build makes (categories as in force
    when each event happened; macro conversions_folded). -#}
{{ conversions_folded(ref('int_visitor_category_days_rolled_up'), 'category_id', 'category_conversion_rate') }}
