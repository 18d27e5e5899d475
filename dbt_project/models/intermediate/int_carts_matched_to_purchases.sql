{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replacing_as_of_dates(),
        partition_by=['as_of_date'],
        post_hook="{{ prune_as_of_dates(this, keep_newest=2) }}",
    )
}}
{#- Per visitor, item and cut-off this build makes: the last add-to-cart and the last purchase of the item before
    the cut-off, so a cart still open (not bought since) can be told from one that was. Folded from the daily
    rollups of the items a visitor carted or bought. -#}
{%- set build = cutoffs_to_build('features') -%}
{%- set base_day = fold_base_day(build) -%}

with

carted_or_bought as (

    select * from {{ ref('int_visitor_item_days_rolled_up') }}
    where num_addtocarts > 0 or num_purchases > 0

),

{{ fold_to_cutoffs(
    'carted_or_bought',
    keys=['visitor_id', 'item_id'],
    maxs={'last_addtocart_ms': 'last_addtocart_ms', 'last_purchase_ms': 'last_purchase_ms'},
    cutoffs=build,
    base_day=base_day,
) }},

final as (

    select
        *,
        coalesce(last_addtocart_ms > coalesce(last_purchase_ms, 0), false) as is_open_cart

    from folded

)

select * from final
