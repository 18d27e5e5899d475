{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replacing_as_of_dates(),
        partition_by=['as_of_date'],
        post_hook="{{ prune_as_of_dates(this, keep_newest=2) }}",
    )
}}
{#- How many times each visitor viewed each category before each cut-off this build makes, folded from the daily
    rollups: the visitor's taste, weighed against each category's conversion rate at the cut-off. -#}
{%- set build = cutoffs_to_build('features') -%}
{%- set base_day = fold_base_day(build) -%}

with

category_views as (

    select * from {{ ref('int_visitor_category_days_rolled_up') }}
    where num_views > 0

),

{{ fold_to_cutoffs(
    'category_views',
    keys=['visitor_id', 'category_id'],
    sums={'num_views': 'num_views'},
    cutoffs=build,
    base_day=base_day,
) }}

select * from folded
