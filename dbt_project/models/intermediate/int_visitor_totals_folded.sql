{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replacing_as_of_dates(),
        partition_by=['as_of_date'],
        post_hook="{{ prune_as_of_dates(this, keep_newest=2) }}",
    )
}}
{#- Each visitor's lifetime totals at each cut-off this build makes: the previous cut-off's totals plus the days
    since, folded from the daily rollups (see macro fold_to_cutoffs). Every visitor seen before the cut-off has a
    row; the lifetime features and the recency of the marts come from here. -#}
{%- set build = cutoffs_to_build('features') -%}
{%- set base_day = fold_base_day(build) -%}

with

visitor_days as (

    select * from {{ ref('int_visitor_days_rolled_up') }}

),

{{ fold_to_cutoffs(
    'visitor_days',
    keys=['visitor_id'],
    sums={
        'total_events_all': 'num_events',
        'num_views_all': 'num_views',
        'num_addtocart_all': 'num_addtocarts',
        'num_sessions_all': 'num_sessions',
        'num_purchased_items_all': 'num_purchased_items',
        'num_transactions_all': 'num_new_transactions',
        'num_unique_items_all': 'num_new_items',
        'num_active_days': '1',
        'num_purchase_days_all': 'case when num_purchased_items > 0 then 1 else 0 end',
    },
    mins={'first_event_ms': 'first_event_ms', 'first_transaction_ms': 'first_transaction_ms'},
    maxs={
        'last_event_ms': 'last_event_ms',
        'last_addtocart_ms': 'last_addtocart_ms',
        'last_transaction_ms': 'last_transaction_ms',
    },
    cutoffs=build,
    base_day=base_day,
) }}

select * from folded
