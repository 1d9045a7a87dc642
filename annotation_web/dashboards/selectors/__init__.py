"""The dashboards' read side, split by what a manager reads: `dataset` (pace, queue, composition, answers),
`people` (annotators, agreement, flags), `models` (leaderboard, reward and restorer metrics, RL rounds,
lineage), `jobs` (running and recent jobs). `filters` holds the date / batch filter they all take, and
`aggregates` the database functions they need beyond Django's (a median that runs on PostgreSQL and SQLite).
"""
