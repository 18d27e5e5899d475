-- Labels straight from the events for the cut-offs in `reference_cutoffs` (as_of_date, cutoff_ms, label_end_ms):
-- every visitor seen before the cut-off, and its distinct purchases in [cut-off, label end).
select
    c.as_of_date,
    v.visitorid as visitor_id,
    cast(count(distinct e.transactionid) > 0 as integer) as has_purchased,
    count(distinct e.transactionid) as num_transactions_in_window
from reference_cutoffs c
join (select visitorid, min(timestamp) as first_ms from raw.events group by 1) v on v.first_ms < c.cutoff_ms
left join raw.events e
    on e.visitorid = v.visitorid and e.event = 'transaction'
    and e.timestamp >= c.cutoff_ms and e.timestamp < c.label_end_ms
group by 1, 2
