#!/usr/bin/env python3
"""The standard job held the way a per-record rules library's users hold it (bench/JOB.md, peer 3).

usage: rule_engine_job.py CUSTOMERS.csv OUT.csv   (needs `pip install rule-engine`)

Each rule is a `rule_engine.Rule` expression over the record's derived fields. Everything else,
deriving the fields, the quiet period, consent, first match wins, is reference_job.py's own
per-record loop: only the way the conditions are held differs.
"""

import sys
from pathlib import Path

import rule_engine

sys.path.insert(0, str(Path(__file__).parent))
import reference_job

# fmt: off
EXPRESSIONS = [  # name, channel, action, condition: one rule a line, as in reference_job.py
    ("vip_call", "phone", "vip_care_call", 'tier == 4 and stage == "active"'),
    ("birthday_gift", "sms", "birthday_coupon", "bday != null and bday >= 0 and bday <= 7 and tier >= 2"),
    ("high_value_at_risk", "phone", "retention_call", "s12 >= 1000 and dsl != null and dsl >= 60 and dsl <= 90"),
    ("winback_gold", "sms", "winback_coupon_50", 'stage == "sleeping" and tier >= 3'),
    ("winback_silver", "sms", "winback_coupon_20", 'stage == "sleeping" and tier == 2'),
    ("silent_care", "email", "care_message", 'stage == "silent" and tier >= 3'),
    ("replenish", "sms", "replenish_reminder", 'category == "consumables" and dsl != null and dsl >= 25 and dsl <= 35'),
    ("second_purchase", "email", "second_purchase_coupon", "tot == 1 and dsl != null and dsl >= 7 and dsl <= 30"),
    ("welcome", "email", "welcome", "tot == 1 and dsf != null and dsf >= 0 and dsf <= 3"),
    ("member_day", "email", "member_day_invite", "o12 >= 10"),
    ("lost_reactivation", "email", "reactivation_offer", 'stage == "lost" and tot >= 3'),
    ("potential_first_order", "email", "first_order_coupon", "tot == 0"),
    ("warranty_check", "phone", "warranty_check_call", 'category == "appliances" and dsl != null and dsl >= 350 and dsl <= 365'),
    ("city_new_arrivals", "email", "new_arrivals", 'city in ["Shanghai", "Beijing"] and stage == "active" and tier >= 2'),
    ("silent_nudge", "email", "silent_nudge", 'stage == "silent" and tier in [1, 2]'),
    ("building_referral", "sms", "referral_reward", 'category == "building" and tot >= 2'),
    ("bronze_upsell", "email", "upsell_offer", 'tier == 1 and stage == "active" and s12 >= 200'),
    ("sleeping_bronze", "email", "winback_coupon_10", 'stage == "sleeping" and tier == 1'),
    ("apparel_lookbook", "email", "season_lookbook", 'category == "apparel" and stage in ["active", "silent"]'),
    ("lost_last_chance", "email", "last_chance", 'stage == "lost"'),
]
# fmt: on

if __name__ == "__main__":
    reference_job.RULES = [
        (name, channel, action, rule_engine.Rule(text).matches)
        for name, channel, action, text in EXPRESSIONS
    ]
    reference_job.main()
