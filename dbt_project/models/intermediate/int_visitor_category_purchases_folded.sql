{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replacing_as_of_dates(),
        partition_by=['as_of_date'],
        post_hook="{{ prune_as_of_dates(this, keep_newest=2) }}",
    )
}}
{#- How many items of each category each visitor bought before each cut-off this build makes, folded from the
    daily rollups: what a customer's purchases say of its taste, where it has no views (an order system's log). -#}
{%- set build = cutoffs_to_build('features') -%}
{%- set base_day = fold_base_day(build) -%}

with

category_purchases as (

    select * from {{ ref('int_visitor_category_days_rolled_up') }}
    where num_purchases > 0

),

{{ fold_to_cutoffs(
    'category_purchases',
    keys=['visitor_id', 'category_id'],
    sums={'num_purchases': 'num_purchases'},
    cutoffs=build,
    base_day=base_day,
) }}

select * from folded
