{#- Label: did the visitor buy at or after the cut-off and before cut-off + horizon. Features use events strictly
    before the cut-off, labels events from it on: the two never share an event. -#}
{%- set day = day_ms() | int -%}
{%- set local_offset_ms = var('day_start_hour_utc') * 3600000 -%}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_generated') }}

),

events as (

    select * from {{ ref('stg_retailrocket__events') }}

),

visitors as (

    select
        visitor_id,
        min(event_ms) as first_event_ms

    from events
    group by 1

),

data_end as (

    {#- The end of the last shop day with any event: label windows ending later are not complete yet. #}
    select
        (floor((max(event_ms) - {{ local_offset_ms }}) / {{ day }}.0) + 1) * {{ day }} + {{ local_offset_ms }}
            as data_end_ms

    from events

),

population as (

    select
        cutoffs.as_of_date,
        visitors.visitor_id

    from cutoffs
    inner join visitors
        on cutoffs.cutoff_ms > visitors.first_event_ms

),

purchases_in_window as (

    select
        cutoffs.as_of_date,
        events.visitor_id,
        count(distinct events.transaction_id) as num_transactions_in_window

    from events
    inner join cutoffs
        on
            events.event_ms >= cutoffs.cutoff_ms
            and events.event_ms < cutoffs.label_end_ms
    where events.is_transaction
    group by 1, 2

),

final as (

    select
        population.as_of_date,
        population.visitor_id,
        {{ var('label_horizon_days') }} as horizon_days,
        cast(coalesce(purchases_in_window.num_transactions_in_window, 0) > 0 as integer) as has_purchased,
        coalesce(purchases_in_window.num_transactions_in_window, 0) as num_transactions_in_window,
        cutoffs.label_end_ms <= data_end.data_end_ms as is_label_complete

    from population
    inner join cutoffs
        on population.as_of_date = cutoffs.as_of_date
    cross join data_end
    left join purchases_in_window
        on
            population.as_of_date = purchases_in_window.as_of_date
            and population.visitor_id = purchases_in_window.visitor_id

)

select * from final
