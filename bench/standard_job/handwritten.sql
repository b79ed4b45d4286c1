-- The standard job hand-written as one DuckDB query: the engine's own floor (bench/JOB.md, peer 1).
-- Reads $CUSTOMERS, writes $OUT (customer_id,rule,action,channel). As-of date 2026-11-22.
COPY (
WITH c AS (
    SELECT * FROM read_csv('$CUSTOMERS', header = true)
),
d AS (
    SELECT customer_id, city, category, orders_12m AS o12, spend_12m AS s12, total_orders AS tot,
        sms_opt_in AS sms, email_opt_in AS email,
        date_diff('day', last_order_date, DATE '2026-11-22') AS dsl,
        date_diff('day', first_order_date, DATE '2026-11-22') AS dsf,
        date_diff('day', last_contacted, DATE '2026-11-22') AS dsc,
        -- 2026 and 2027 have no 29 February: such birthdays fall on the 28th
        make_date(2026, month(birthday),
            CASE WHEN month(birthday) = 2 AND day(birthday) = 29 THEN 28 ELSE day(birthday) END) AS b26,
        make_date(2027, month(birthday),
            CASE WHEN month(birthday) = 2 AND day(birthday) = 29 THEN 28 ELSE day(birthday) END) AS b27
    FROM c
),
s AS (
    SELECT *,
        date_diff('day', DATE '2026-11-22',
            CASE WHEN b26 >= DATE '2026-11-22' THEN b26 ELSE b27 END) AS bday,
        CASE WHEN dsl IS NULL OR dsl > 365 THEN 0 WHEN dsl <= 30 THEN 5 WHEN dsl <= 90 THEN 4
             WHEN dsl <= 120 THEN 3 WHEN dsl <= 210 THEN 2 ELSE 1 END
        + 3 * (CASE WHEN o12 >= 6 THEN 5 WHEN o12 >= 4 THEN 4 ELSE o12 END)
        + 4 * (CASE WHEN s12 >= 2000 THEN 5 WHEN s12 >= 1000 THEN 4 WHEN s12 >= 500 THEN 3
                    WHEN s12 >= 300 THEN 2 WHEN s12 > 0 THEN 1 ELSE 0 END) AS rfm
    FROM d
),
u AS (
    SELECT *,
        CASE WHEN rfm >= 36 THEN 4 WHEN rfm >= 26 THEN 3 WHEN rfm >= 17 THEN 2 WHEN rfm >= 1 THEN 1
             ELSE 0 END AS tier,
        CASE WHEN dsl IS NULL THEN 'potential' WHEN dsl <= 90 THEN 'active'
             WHEN dsl <= 180 THEN 'silent' WHEN dsl <= 270 THEN 'sleeping' ELSE 'lost' END AS stage
    FROM s
    WHERE dsc IS NULL OR dsc > 3
),
picked AS (
    SELECT customer_id, CASE
        WHEN tier = 4 AND stage = 'active' THEN 'vip_call,vip_care_call,phone'
        WHEN sms AND bday BETWEEN 0 AND 7 AND tier >= 2 THEN 'birthday_gift,birthday_coupon,sms'
        WHEN s12 >= 1000 AND dsl BETWEEN 60 AND 90 THEN 'high_value_at_risk,retention_call,phone'
        WHEN sms AND stage = 'sleeping' AND tier >= 3 THEN 'winback_gold,winback_coupon_50,sms'
        WHEN sms AND stage = 'sleeping' AND tier = 2 THEN 'winback_silver,winback_coupon_20,sms'
        WHEN email AND stage = 'silent' AND tier >= 3 THEN 'silent_care,care_message,email'
        WHEN sms AND category = 'consumables' AND dsl BETWEEN 25 AND 35 THEN 'replenish,replenish_reminder,sms'
        WHEN email AND tot = 1 AND dsl BETWEEN 7 AND 30 THEN 'second_purchase,second_purchase_coupon,email'
        WHEN email AND tot = 1 AND dsf BETWEEN 0 AND 3 THEN 'welcome,welcome,email'
        WHEN email AND o12 >= 10 THEN 'member_day,member_day_invite,email'
        WHEN email AND stage = 'lost' AND tot >= 3 THEN 'lost_reactivation,reactivation_offer,email'
        WHEN email AND tot = 0 THEN 'potential_first_order,first_order_coupon,email'
        WHEN category = 'appliances' AND dsl BETWEEN 350 AND 365 THEN 'warranty_check,warranty_check_call,phone'
        WHEN email AND city IN ('Shanghai', 'Beijing') AND stage = 'active' AND tier >= 2 THEN 'city_new_arrivals,new_arrivals,email'
        WHEN email AND stage = 'silent' AND tier IN (1, 2) THEN 'silent_nudge,silent_nudge,email'
        WHEN sms AND category = 'building' AND tot >= 2 THEN 'building_referral,referral_reward,sms'
        WHEN email AND tier = 1 AND stage = 'active' AND s12 >= 200 THEN 'bronze_upsell,upsell_offer,email'
        WHEN email AND stage = 'sleeping' AND tier = 1 THEN 'sleeping_bronze,winback_coupon_10,email'
        WHEN email AND category = 'apparel' AND stage IN ('active', 'silent') THEN 'apparel_lookbook,season_lookbook,email'
        WHEN email AND stage = 'lost' THEN 'lost_last_chance,last_chance,email'
    END AS pick
    FROM u
)
SELECT customer_id, split_part(pick, ',', 1) AS rule, split_part(pick, ',', 2) AS action,
    split_part(pick, ',', 3) AS channel
FROM picked WHERE pick IS NOT NULL
) TO '$OUT' (FORMAT CSV, HEADER);
