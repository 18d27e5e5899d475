-- The features straight from the events, for the cut-offs in table `reference_cutoffs` (as_of_date, cutoff_ms):
-- every event before each cut-off joined to it, as the product computed them before the daily rollups. Slow
-- (events x cut-offs) and obviously right; tests/test_features.py compares the marts with it value for value.
with recursive
cutoffs as (select * from reference_cutoffs),
raw_events as (
    select timestamp as event_ms, visitorid as visitor_id, itemid as item_id, transactionid as transaction_id,
        event = 'view' as is_view, event = 'addtocart' as is_addtocart, event = 'transaction' as is_transaction,
        floor((timestamp - 10800000) / 86400000.0) as shop_day,
        coalesce(timestamp - lag(timestamp) over (partition by visitorid order by timestamp, event, itemid)
            > 30 * 60000, true) as is_session_start
    from raw.events
),
item_categories as (
    select itemid as item_id, cast(arg_max(value, timestamp) as bigint) as category_id
    from raw.item_properties where property = 'categoryid' group by 1
),
e as (
    select c.as_of_date, c.cutoff_ms, ev.* from cutoffs c join raw_events ev on ev.event_ms < c.cutoff_ms
),
activity as (
    select as_of_date, visitor_id, max(cutoff_ms) as cutoff_ms,
        count(*) filter (where event_ms >= cutoff_ms - 30 * 86400000::bigint) as total_events_30d,
        count(*) filter (where event_ms >= cutoff_ms - 30 * 86400000::bigint and is_view) as num_views_30d,
        count(*) filter (where event_ms >= cutoff_ms - 30 * 86400000::bigint and is_addtocart) as num_addtocart_30d,
        count(distinct item_id) filter (where event_ms >= cutoff_ms - 30 * 86400000::bigint) as num_unique_items_30d,
        count(*) filter (where event_ms >= cutoff_ms - 7 * 86400000::bigint) as total_events_7d,
        count(*) filter (where event_ms >= cutoff_ms - 7 * 86400000::bigint and is_view) as num_views_7d,
        count(*) filter (where event_ms >= cutoff_ms - 7 * 86400000::bigint and is_addtocart) as num_addtocart_7d,
        count(distinct item_id) filter (where event_ms >= cutoff_ms - 7 * 86400000::bigint) as num_unique_items_7d,
        count(*) filter (where event_ms >= cutoff_ms - 86400000) as total_events_1d,
        count(*) filter (where event_ms >= cutoff_ms - 86400000 and is_view) as num_views_1d,
        count(*) filter (where event_ms >= cutoff_ms - 86400000 and is_addtocart) as num_addtocart_1d,
        count(distinct item_id) filter (where event_ms >= cutoff_ms - 86400000) as num_unique_items_1d,
        count(*) filter (where event_ms >= cutoff_ms - 86400000 and is_session_start) as num_sessions_1d,
        count(distinct transaction_id) filter (where event_ms >= cutoff_ms - 86400000) as num_transactions_1d,
        count(*) filter (where event_ms >= cutoff_ms - 7 * 86400000::bigint and is_session_start) as num_sessions_7d,
        count(distinct transaction_id) filter (where event_ms >= cutoff_ms - 7 * 86400000::bigint) as num_transactions_7d,
        count(*) filter (where event_ms >= cutoff_ms - 30 * 86400000::bigint and is_session_start) as num_sessions_30d,
        count(distinct transaction_id) filter (where event_ms >= cutoff_ms - 30 * 86400000::bigint) as num_transactions_30d,
        count(*) as total_events_all, count(*) filter (where is_view) as num_views_all,
        count(*) filter (where is_addtocart) as num_addtocart_all, count(*) filter (where is_session_start) as num_sessions_all,
        count(distinct transaction_id) as num_transactions_all, count(*) filter (where is_transaction) as num_purchased_items_all,
        count(distinct item_id) as num_unique_items_all, count(distinct shop_day) as num_active_days,
        min(event_ms) as first_event_ms, max(event_ms) as last_event_ms,
        max(event_ms) filter (where is_addtocart) as last_addtocart_ms,
        min(event_ms) filter (where is_transaction) as first_transaction_ms,
        max(event_ms) filter (where is_transaction) as last_transaction_ms,
        count(distinct shop_day) filter (where is_transaction) as num_purchase_days_all
    from e group by 1, 2
),
conversion_counts as (  -- per item and per category: distinct viewers and buyers before the cut-off
    select as_of_date, 'item' as kind, item_id as id, count(distinct visitor_id) filter (where is_view) as num_viewers,
        count(distinct visitor_id) filter (where is_transaction) as num_buyers
    from e group by 1, 2, 3
    union all
    select e.as_of_date, 'category', c.category_id, count(distinct e.visitor_id) filter (where e.is_view),
        count(distinct e.visitor_id) filter (where e.is_transaction)
    from e join item_categories c using (item_id) group by 1, 2, 3
),
shop_rates as (
    select as_of_date, kind, (sum(num_buyers) + 1.0) / (sum(num_viewers) + 1.0) as shop_rate
    from conversion_counts group by 1, 2
),
rates as (
    select as_of_date, kind, id, (num_buyers + 200 * shop_rate) / (num_viewers + 200) as rate
    from conversion_counts join shop_rates using (as_of_date, kind)
),
item_rates as (select as_of_date, id as item_id, rate as item_conversion_rate from rates where kind = 'item'),
category_rates as (
    select as_of_date, id as category_id, rate as category_conversion_rate from rates where kind = 'category'
),
item_focus as (
    select v.as_of_date, v.visitor_id, max(v.n) as max_views_of_one_item_7d,
        cast(sum(cast(round(r.item_conversion_rate * 1e12) as bigint)) as double) / 1e12 / count(r.item_conversion_rate) as avg_item_conversion_rate_7d,
        max(r.item_conversion_rate) as max_item_conversion_rate_7d
    from (select as_of_date, visitor_id, item_id, count(*) as n from e
          where is_view and event_ms >= cutoff_ms - 7 * 86400000::bigint group by 1, 2, 3) v
    left join item_rates r using (as_of_date, item_id)
    group by 1, 2
),
affinity as (
    select v.as_of_date, v.visitor_id,
        cast(sum(v.n * cast(round(r.category_conversion_rate * 1e12) as bigint)) as double) / 1e12 / sum(v.n) as category_conversion_rate,
        cast(max(v.n) as double) / sum(v.n) as top_category_view_share, count(*) as num_categories_viewed
    from (select e.as_of_date, e.visitor_id, c.category_id, count(*) as n from e join item_categories c using (item_id)
          where e.is_view group by 1, 2, 3) v
    join category_rates r using (as_of_date, category_id)
    group by 1, 2
),
category_tops as (  -- each category's top-level ancestor, walked up the tree
    select categoryid as category_id, categoryid as top_category_id from raw.category_tree where parentid is null
    union all
    select t.categoryid, p.top_category_id from raw.category_tree t join category_tops p on t.parentid = p.category_id
),
customers as (
    select as_of_date, visitor_id, num_purchase_days_all - 1 as repeats, cutoff_ms - first_transaction_ms as exposure_ms
    from activity where num_purchase_days_all > 0
),
customer_tops as (
    select e.as_of_date, e.visitor_id, coalesce(t.top_category_id, c.category_id) as top_category_id, count(*) as n
    from e join item_categories c using (item_id) left join category_tops t using (category_id)
    where e.is_transaction group by 1, 2, 3
),
shop_repeat as (
    select as_of_date, sum(repeats) / (sum(exposure_ms) / 86400000.0) as shop_rate from customers group by 1
),
top_rates as (
    select as_of_date, top_category_id,
        (sum(repeats) + 365 * max(shop_rate)) / (sum(exposure_ms) / 86400000.0 + 365) as rate
    from customer_tops join customers using (as_of_date, visitor_id) join shop_repeat using (as_of_date) group by 1, 2
),
purchase_taste as (
    select as_of_date, visitor_id,
        cast(sum(n * cast(round(rate * 1e12) as bigint)) as double) / 1e12 / sum(n) as purchased_category_repeat_rate
    from customer_tops join top_rates using (as_of_date, top_category_id) group by 1, 2
),
carts as (
    select as_of_date, visitor_id, item_id, max(cutoff_ms) as cutoff_ms,
        max(event_ms) filter (where is_addtocart) as last_cart, max(event_ms) filter (where is_transaction) as last_buy
    from e where is_addtocart or is_transaction group by 1, 2, 3
),
open_carts as (
    select as_of_date, visitor_id,
        count(*) filter (where last_cart > coalesce(last_buy, 0)) as num_open_carts,
        count(*) filter (where last_cart > coalesce(last_buy, 0) and last_cart >= cutoff_ms - 7 * 86400000::bigint) as num_open_carts_7d
    from carts group by 1, 2
)
select
    a.as_of_date, a.visitor_id,
    total_events_30d, num_views_30d, num_addtocart_30d, num_unique_items_30d,
    total_events_7d, num_views_7d, num_addtocart_7d, num_unique_items_7d,
    total_events_1d, num_views_1d, num_addtocart_1d, num_unique_items_1d,
    cast(floor((a.cutoff_ms - last_event_ms) / 86400000.0) as integer) as days_since_last_event,
    case when num_views_7d > 0 then cast(num_addtocart_7d as double) / num_views_7d else 0.0 end as add_to_cart_rate_7d,
    num_sessions_1d, num_transactions_1d, num_sessions_7d, num_transactions_7d, num_sessions_30d, num_transactions_30d,
    total_events_all, num_views_all, num_addtocart_all, num_sessions_all, num_transactions_all, num_purchased_items_all,
    num_unique_items_all, num_active_days,
    (a.cutoff_ms - first_event_ms) / 86400000.0 as days_since_first_event,
    (a.cutoff_ms - last_event_ms) / 3600000.0 as hours_since_last_event,
    (a.cutoff_ms - last_addtocart_ms) / 3600000.0 as hours_since_last_addtocart,
    (a.cutoff_ms - last_transaction_ms) / 86400000.0 as days_since_last_transaction,
    num_purchase_days_all, (a.cutoff_ms - first_transaction_ms) / 86400000.0 as days_since_first_transaction,
    case when num_purchase_days_all > 1
        then (last_transaction_ms - first_transaction_ms) / 86400000.0 / (num_purchase_days_all - 1) end
        as avg_days_between_purchase_days,
    coalesce(num_open_carts, 0) as num_open_carts, coalesce(num_open_carts_7d, 0) as num_open_carts_7d,
    case when total_events_7d > 0 then cast(total_events_1d as double) / total_events_7d else 0.0 end as events_1d_to_7d_ratio,
    case when total_events_30d > 0 then cast(total_events_7d as double) / total_events_30d else 0.0 end as events_7d_to_30d_ratio,
    case when num_sessions_30d > 0 then cast(num_sessions_7d as double) / num_sessions_30d else 0.0 end as sessions_7d_to_30d_ratio,
    cast(floor(((last_event_ms - 10800000) % 86400000) / 3600000.0) as integer) as last_event_local_hour,
    cast((floor((last_event_ms - 10800000) / 86400000.0) + 3) % 7 as integer) as last_event_weekday,
    coalesce(max_views_of_one_item_7d, 0) as max_views_of_one_item_7d, avg_item_conversion_rate_7d,
    max_item_conversion_rate_7d, category_conversion_rate, top_category_view_share,
    coalesce(num_categories_viewed, 0) as num_categories_viewed, purchased_category_repeat_rate
from activity a
left join item_focus using (as_of_date, visitor_id)
left join affinity using (as_of_date, visitor_id)
left join purchase_taste using (as_of_date, visitor_id)
left join open_carts using (as_of_date, visitor_id)
