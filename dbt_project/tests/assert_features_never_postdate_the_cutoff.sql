-- Every featured visitor was seen before the cut-off, and nothing in the features is dated at or after it.
with

features as (

    select * from {{ ref('fct_visitor_features') }}

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
