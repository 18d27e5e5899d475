-- Every featured visitor was seen before the cut-off, and nothing in the features is dated at or after it. Checks
-- the dates this build made (ml.build_plan), like the mart's generic tests: the rest were checked when built.
with

built as (

    select as_of_date from {{ source('job', 'build_plan') }}
    where builds_features

),

features as (

    select mart.*
    from {{ ref('fct_visitor_features') }} as mart
    inner join built on mart.as_of_date = built.as_of_date

)

select
    as_of_date,
    visitor_id,
    hours_since_last_event,
    hours_since_last_addtocart,
    days_since_last_transaction

from features
where
    hours_since_last_event <= 0
    or hours_since_last_addtocart <= 0
    or days_since_last_transaction <= 0
    or days_since_first_event < hours_since_last_event / 24.0 - 1e-6
