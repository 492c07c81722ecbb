"""CloudWatch as strict as AWS where the functions depend on it.

moto stores datapoints and alarms but never evaluates an alarm, lets
SetAlarmState rewrite the reason of an alarm that stays in its state, has no
PutCompositeAlarm, ignores AlarmTypes, never pages DescribeAlarms, emits no
events and takes any PutMetricData. This module adds, on moto's own backend:

- alarm evaluation against the clock (clock.py), not on datapoint arrival:
  once a minute, on the minute, each alarm reads its evaluation range (its
  evaluation periods and two more), ending at that instant; later (future)
  and older datapoints do not count; M out of N; TreatMissingData missing,
  ignore, breaching and notBreaching as CloudWatch's "How alarm state is
  evaluated when data is missing" describes; the state and its
  StateReasonData change only on a transition, in AWS's reason-data shape;
- composite alarms: a rule naming an unknown alarm is refused; a new one is
  INSUFFICIENT_DATA until its first evaluation, then ALARM or OK only,
  re-evaluated whenever a child changes state; ActionsSuppressor with its
  wait and extension periods holds the actions (GET /_emulator/alarm-actions
  lists every action run or suppressed), while the state still changes;
- every state change (SetAlarmState too) emitted as CloudWatch's
  "CloudWatch Alarm State Change" event (bus.py);
- PutMetricData limits: 1,000 datums, 30 dimensions a datum, time stamps two
  weeks back to two hours ahead (the 1 MB body is checked by the CBOR bridge);
- GetMetricData for metric stat queries and arithmetic metric math;
- DescribeAlarms with AlarmTypes (metric alarms only when omitted), MaxRecords
  (1..100, default 50) and NextToken.

Control API: POST /_emulator/alarms/evaluate {"region": R} evaluates every
alarm (of R) at the latest evaluation instant; clock.py moves time.
"""

import ast
import datetime as dt
import json
import math
import re
import threading
import uuid

from moto.cloudwatch import models as cw_models
from moto.cloudwatch.exceptions import ValidationError
from moto.core import DEFAULT_ACCOUNT_ID

import bus
import clock
import faults

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LOCK = threading.RLock()
MAX_RECORDS_LIMIT = 100
DEFAULT_MAX_RECORDS = 50


def _utc(value):
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return EPOCH + dt.timedelta(seconds=value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def _epoch(value):
    return (_utc(value) - EPOCH).total_seconds()


def _reason_time(value):
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


# ---------------------------------------------------------------- statistics


def _samples(datum):
    """(sum, count, min, max, values) of one stored datum."""
    if hasattr(datum, "value"):
        v = float(datum.value)
        return v, 1.0, v, v, [v]
    total = float(datum.sum_stat)
    count = float(datum.sample_count)
    return total, count, float(datum.min_stat), float(datum.max_stat), []


def statistic(stat, data):
    """One statistic over the stored datums of one period, or None."""
    if not data:
        return None
    parts = [_samples(d) for d in data]
    total = sum(p[0] for p in parts)
    count = sum(p[1] for p in parts)
    if stat == "Sum":
        return total
    if stat == "SampleCount":
        return count
    if stat == "Minimum":
        return min(p[2] for p in parts)
    if stat == "Maximum":
        return max(p[3] for p in parts)
    if stat == "Average":
        return total / count if count else None
    match = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat or "")
    if match:
        values = sorted(v for p in parts for v in p[4])
        if not values:
            return None
        rank = max(0, math.ceil(float(match.group(1)) / 100 * len(values)) - 1)
        return values[min(rank, len(values) - 1)]
    raise ValidationError(f"The statistic {stat} is not supported by this emulator.")


def _dimension_set(dimensions):
    pairs = []
    for d in dimensions or []:
        if isinstance(d, dict):
            pairs.append((d.get("Name"), d.get("Value")))
        else:
            pairs.append((d.name, d.value))
    return frozenset(pairs)


def metric_series(backend, namespace, name, dimensions, stat, period, start, end, origin=0):
    """{period start epoch: value} over [start, end), periods aligned to `origin`
    (an alarm's periods end at its evaluation instant)."""
    wanted = _dimension_set(dimensions)
    buckets = {}
    for datum in backend.metric_data:
        if datum.namespace != namespace or datum.name != name:
            continue
        if _dimension_set(datum.dimensions) != wanted:
            continue
        at = _epoch(datum.timestamp)
        if not (start <= at < end):
            continue
        bucket = origin + math.floor((at - origin) / period) * period
        buckets.setdefault(bucket, []).append(datum)
    series = {}
    for bucket, data in buckets.items():
        value = statistic(stat, data)
        if value is not None:
            series[bucket] = value
    return series


# ---------------------------------------------------------------- metric math

_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.USub,
    ast.UAdd,
    ast.Name,
    ast.Load,
    ast.Constant,
)


def evaluate_expression(expression, series_by_id):
    """Arithmetic metric math (ids, numbers, + - * /, parentheses), per timestamp."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ValidationError(f"Invalid metric math expression: {expression}")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValidationError(
                f"This emulator evaluates arithmetic metric math only: {expression}"
            )
        if isinstance(node, ast.Name) and node.id not in series_by_id:
            raise ValidationError(f"Unknown metric id {node.id} in {expression}")
    names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)]
    stamps = None
    for n in names:
        keys = set(series_by_id[n])
        stamps = keys if stamps is None else stamps & keys
    code = compile(tree, "<metric-math>", "eval")
    out = {}
    for at in sorted(stamps or []):
        env = {n: series_by_id[n][at] for n in names}
        try:
            out[at] = float(eval(code, {"__builtins__": {}}, env))  # noqa: S307 (checked AST)
        except ZeroDivisionError:
            continue
    return out


def run_queries(backend, queries, start, end, origin=0):
    """GetMetricData: every query's series by id (stat queries first, then math)."""
    series = {}
    for q in queries:
        stat = q.get("MetricStat")
        if stat:
            metric = stat["Metric"]
            series[q["Id"]] = metric_series(
                backend,
                metric["Namespace"],
                metric["MetricName"],
                metric.get("Dimensions", []),
                stat["Stat"],
                int(stat["Period"]),
                start,
                end,
                origin,
            )
    for q in queries:
        if "Expression" in q and "MetricStat" not in q:
            series[q["Id"]] = evaluate_expression(q["Expression"], series)
    return series


def get_metric_data(backend, request):
    queries = request.get("MetricDataQueries") or []
    if not queries or len(queries) > 500:
        raise ValidationError("MetricDataQueries must hold 1 to 500 queries.")
    start, end = _epoch(request["StartTime"]), _epoch(request["EndTime"])
    if start >= end:
        raise ValidationError("The parameter EndTime must be greater than StartTime.")
    series = run_queries(backend, queries, start, end)
    descending = request.get("ScanBy", "TimestampDescending") == "TimestampDescending"
    results = []
    for q in queries:
        if not q.get("ReturnData", True):
            continue
        points = sorted(series.get(q["Id"], {}).items(), reverse=descending)
        results.append(
            {
                "Id": q["Id"],
                "Label": q.get("Label") or q["Id"],
                "Timestamps": [t for t, _ in points],
                "Values": [v for _, v in points],
                "StatusCode": "Complete",
            }
        )
    return {"MetricDataResults": results, "Messages": []}


# ---------------------------------------------------------------- alarm evaluation

_COMPARISONS = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


def _alarm_period(alarm):
    """The alarm's period: its metric's, or its returned query's (else the first)."""
    if not alarm.metric_data_queries:
        return int(alarm.period)
    periods = [
        int(q.metric_stat.period) if q.metric_stat else int(q.period or 0)
        for q in sorted(alarm.metric_data_queries, key=lambda q: not q.return_data)
    ]
    return next((p for p in periods if p), 60)


def _alarm_series(backend, alarm, start, end, origin=0):
    """The alarm's own series over [start, end), and its period."""
    if alarm.metric_data_queries:
        queries = []
        returned = None
        period = None
        for q in alarm.metric_data_queries:
            item = {"Id": q.id, "ReturnData": bool(q.return_data)}
            if q.metric_stat:
                m = q.metric_stat.metric
                item["MetricStat"] = {
                    "Metric": {
                        "Namespace": m.namespace,
                        "MetricName": m.metric_name,
                        "Dimensions": [
                            {"Name": d["Name"], "Value": d["Value"]}
                            if isinstance(d, dict)
                            else {"Name": d.name, "Value": d.value}
                            for d in (m.dimensions or [])
                        ],
                    },
                    "Period": int(q.metric_stat.period),
                    "Stat": q.metric_stat.stat,
                }
                period = period or int(q.metric_stat.period)
            else:
                item["Expression"] = q.expression
                period = period or (int(q.period) if q.period else None)
            if q.return_data:
                returned = q.id
            queries.append(item)
        series = run_queries(backend, queries, start, end, origin)
        return series.get(returned, {}), period or 60
    stat = alarm.statistic or alarm.extended_statistic
    return (
        metric_series(
            backend,
            alarm.namespace,
            alarm.metric_name,
            alarm.dimensions,
            stat,
            int(alarm.period),
            start,
            end,
            origin,
        ),
        int(alarm.period),
    )


def _alarm_time(alarm):
    return clock.now(alarm.region_name).replace(tzinfo=None)


def transition(alarm, state, reason, reason_data, extra=None):
    """Moves an alarm to `state`; a call that keeps the state changes nothing.
    A change is stamped with emulator time, emitted as the EventBridge event
    CloudWatch sends, and its actions are run (or suppressed) and recorded."""
    if alarm.state_value == state:
        return False
    previous = _state_of(alarm)
    alarm.update_state(reason, reason_data, state)
    alarm.state_updated_timestamp = _alarm_time(alarm)
    alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
    current = _state_of(alarm)
    current.update(_start_actions(alarm))
    current.update(extra or {})
    bus.emit(
        alarm.region_name,
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
        [alarm.alarm_arn],
        {
            "alarmName": alarm.name,
            "state": current,
            "previousState": previous,
            "configuration": _configuration(alarm),
        },
        at=clock.now(alarm.region_name),
    )
    return True


def evaluation_range(periods):
    """How many periods an evaluation reads. AWS reads more than the evaluation
    periods without saying exactly how many; its documented example reads 5
    for 3 evaluation periods."""
    return periods + 2


def _verdict(values, needed, periods, treat, compare, threshold):
    """(state or None to hold, breaching count, datapoints filled in) for the
    existing values of the evaluation range, newest first, as CloudWatch's
    "How alarm state is evaluated when data is missing" describes it."""
    breaches = [compare(v, threshold) for v in values]
    if len(values) >= periods:
        breaching = sum(breaches[:periods])
        return ("ALARM" if breaching >= needed else "OK"), breaching, 0
    filled = periods - len(values)
    real = sum(breaches)
    if treat == "breaching":
        breaching = real + filled
        return ("ALARM" if breaching >= needed else "OK"), breaching, filled
    if treat == "notBreaching":
        return ("ALARM" if real >= needed else "OK"), real, filled
    # missing / ignore: a non-breaching point settles OK; breaching points only,
    # too few of them, cannot decide.
    if real >= needed:
        return "ALARM", real, filled
    if real < len(values):
        return "OK", real, filled
    return ("INSUFFICIENT_DATA" if treat == "missing" else None), real, filled


def evaluate_metric_alarm(backend, alarm, instant):
    """Evaluates `alarm` at the evaluation instant `instant` (epoch seconds):
    its periods end at `instant`; later datapoints (the future) and earlier
    ones than its evaluation range do not count."""
    compare, words = _COMPARISONS.get(alarm.comparison_operator, (None, None))
    if compare is None:
        return False
    period = _alarm_period(alarm)
    periods = int(alarm.evaluation_periods or 1)
    needed = int(alarm.datapoints_to_alarm or periods)
    reach = evaluation_range(periods)
    first = instant - reach * period
    series, _ = _alarm_series(backend, alarm, first, instant, origin=instant)
    starts = [instant - i * period for i in range(1, reach + 1)]
    existing = [(t, series[t]) for t in starts if t in series]
    treat = alarm.treat_missing_data or "missing"
    threshold = float(alarm.threshold)
    state, breaching, filled = _verdict(
        [v for _, v in existing], needed, periods, treat, compare, threshold
    )
    if state is None:
        return False
    evaluated = existing[:periods]
    if state == "INSUFFICIENT_DATA":
        unknown = periods - len(evaluated)
        reason = (
            f"Insufficient Data: {unknown} datapoint"
            f"{'s were' if unknown != 1 else ' was'} unknown."
        )
    else:
        shown = ", ".join(
            f"{v} ({(EPOCH + dt.timedelta(seconds=t)).strftime('%d/%m/%y %H:%M:%S')})"
            for t, v in evaluated
        )
        extra = f" and {filled} missing datapoint{'s' if filled != 1 else ''}" if filled else ""
        reason = (
            f"Threshold Crossed: {breaching} out of the last {periods} datapoints "
            f"[{shown}]{extra} was {'' if state == 'ALARM' else 'not '}{words} the "
            f"threshold ({threshold}) (minimum {needed} datapoint for "
            f"{alarm.state_value} -> {state} transition)."
        )
    oldest = evaluated[-1][0] if evaluated else instant - periods * period
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": _reason_time(clock.now(alarm.region_name)),
            "startDate": _reason_time(EPOCH + dt.timedelta(seconds=oldest)),
            "statistic": alarm.statistic or alarm.extended_statistic,
            "period": period,
            "recentDatapoints": [v for _, v in reversed(evaluated)],
            "threshold": threshold,
            "evaluatedDatapoints": [
                {
                    "timestamp": _reason_time(EPOCH + dt.timedelta(seconds=t)),
                    "value": v,
                }
                for t, v in evaluated
            ],
        }
    )
    return transition(alarm, state, reason, reason_data)


def evaluate_region(backend, instant=None):
    """Evaluates every alarm of `backend` at `instant` (default: its region's
    latest evaluation instant), then its composite alarms and their actions."""
    if instant is None:
        instant = clock.last_instant(backend.region_name)
    with LOCK:
        for alarm in list(backend.alarms.values()):
            if alarm.rule is None:
                evaluate_metric_alarm(backend, alarm, instant)
        evaluate_composites(backend)
        run_pending_actions(backend)


def evaluate_everywhere(region=None):
    """Evaluates the alarms of `region` (every region when None)."""
    accounts = cw_models.cloudwatch_backends.get(DEFAULT_ACCOUNT_ID)
    if accounts is None:
        return 0
    regions = [region] if region else list(accounts.keys())
    count = 0
    for name in regions:
        backend = accounts[name]
        if backend.alarms:
            evaluate_region(backend)
            count += len(backend.alarms)
    return count


# ---------------------------------------------------------------- events and actions


def _event_time(value):
    if value is None:
        return None
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _state_of(alarm):
    state = {
        "value": alarm.state_value,
        "reason": alarm.state_reason,
        "timestamp": _event_time(alarm.state_updated_timestamp),
    }
    if alarm.state_reason_data and alarm.state_reason_data != "{}":
        state["reasonData"] = alarm.state_reason_data
    return state


def _dimension_map(dimensions):
    return {k: v for k, v in sorted(_dimension_set(dimensions))}


def _configuration(alarm):
    """The event's `configuration`, as CloudWatch's sample events show it."""
    config = {}
    if alarm.description:
        config["description"] = alarm.description
    if alarm.rule is not None:
        config["alarmRule"] = alarm.rule
        if getattr(alarm, "actions_suppressor", None):
            config["actionsSuppressor"] = alarm.actions_suppressor
            config["actionsSuppressorWaitPeriod"] = alarm.actions_suppressor_wait_period
            config["actionsSuppressorExtensionPeriod"] = (
                alarm.actions_suppressor_extension_period
            )
        return config
    metrics = []
    if alarm.metric_data_queries:
        for q in alarm.metric_data_queries:
            item = {"id": q.id, "returnData": bool(q.return_data)}
            if q.metric_stat:
                m = q.metric_stat.metric
                item["metricStat"] = {
                    "metric": {
                        "dimensions": _dimension_map(m.dimensions),
                        "name": m.metric_name,
                        "namespace": m.namespace,
                    },
                    "period": int(q.metric_stat.period),
                    "stat": q.metric_stat.stat,
                }
            else:
                item["expression"] = q.expression
            if getattr(q, "label", None):
                item["label"] = q.label
            metrics.append(item)
    else:
        metrics.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn)),
                "metricStat": {
                    "metric": {
                        "dimensions": _dimension_map(alarm.dimensions),
                        "name": alarm.metric_name,
                        "namespace": alarm.namespace,
                    },
                    "period": int(alarm.period),
                    "stat": alarm.statistic or alarm.extended_statistic,
                },
                "returnData": True,
            }
        )
    config["metrics"] = metrics
    return config


# Every action an alarm ran or had suppressed: GET /_emulator/alarm-actions.
ACTIONS = []


def _actions_for(alarm, state):
    return {
        "ALARM": alarm.alarm_actions,
        "OK": alarm.ok_actions,
        "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
    }.get(state) or []


def _record(alarm, state, outcome, by=None):
    ACTIONS.append(
        {
            "region": alarm.region_name,
            "alarm": alarm.name,
            "state": state,
            "actions": list(_actions_for(alarm, state)),
            "outcome": outcome,
            "suppressedBy": by,
            "at": clock.describe(alarm.region_name)["now"],
        }
    )


def _suppressor(alarm):
    name = getattr(alarm, "actions_suppressor", None)
    if not name:
        return None
    backend = cw_models.cloudwatch_backends[DEFAULT_ACCOUNT_ID][alarm.region_name]
    return backend.alarms.get(name.split(":alarm:")[-1])


def _suppress(alarm, by):
    alarm.actions_suppressed_by = by
    alarm.actions_suppressed_reason = f"Actions suppressed by {by}"


def _start_actions(alarm):
    """Runs the new state's actions, or holds them as the composite alarm's
    ActionsSuppressor says; returns what the state change event adds."""
    alarm.actions_suppressed_by = None
    alarm.actions_suppressed_reason = None
    alarm.pending_actions = None
    if not alarm.actions_enabled:
        return {}
    suppressor = _suppressor(alarm)
    if suppressor is None:
        _record(alarm, alarm.state_value, "executed")
        return {}
    at = clock.now_epoch(alarm.region_name)
    if suppressor.state_value == "ALARM":
        _suppress(alarm, "Alarm")
        alarm.pending_actions = {"state": alarm.state_value, "until": None}
        _record(alarm, alarm.state_value, "suppressed", "Alarm")
    else:
        _suppress(alarm, "WaitPeriod")
        alarm.pending_actions = {
            "state": alarm.state_value,
            "until": at + float(alarm.actions_suppressor_wait_period),
        }
    return {
        "actionsSuppressedBy": alarm.actions_suppressed_by,
        "actionsSuppressedReason": alarm.actions_suppressed_reason,
    }


def run_pending_actions(backend):
    """Moves held actions on: the suppressor went into ALARM (suppressed), left
    it (the extension period starts), or a wait ran out (the actions run)."""
    for alarm in list(backend.alarms.values()):
        pending = getattr(alarm, "pending_actions", None)
        if not pending or pending["state"] != alarm.state_value:
            continue
        suppressor = _suppressor(alarm)
        at = clock.now_epoch(alarm.region_name)
        by = alarm.actions_suppressed_by
        suppressing = suppressor is not None and suppressor.state_value == "ALARM"
        if suppressing and by != "Alarm":
            _suppress(alarm, "Alarm")
            pending["until"] = None
            _record(alarm, alarm.state_value, "suppressed", "Alarm")
        elif not suppressing and by == "Alarm":
            _suppress(alarm, "ExtensionPeriod")
            pending["until"] = at + float(alarm.actions_suppressor_extension_period)
        elif not suppressing and pending["until"] is not None and at >= pending["until"]:
            _record(alarm, alarm.state_value, "executed", by)
            alarm.actions_suppressed_by = None
            alarm.actions_suppressed_reason = None
            alarm.pending_actions = None


# ---------------------------------------------------------------- composite rules

_RULE_TOKENS = re.compile(
    r'\s*(?:(\()|(\))|(AND|OR|NOT|TRUE|FALSE)\b|(ALARM|OK|INSUFFICIENT_DATA)\s*\(\s*"?([^")]+?)"?\s*\))'
)


def evaluate_rule(rule, states):
    """Evaluates a composite alarm rule against `states` (alarm name -> state)."""
    tokens = []
    pos = 0
    while pos < len(rule):
        if rule[pos:].strip() == "":
            break
        m = _RULE_TOKENS.match(rule, pos)
        if not m:
            raise ValidationError(f"Cannot parse AlarmRule at {rule[pos:]!r}")
        if m.group(1):
            tokens.append("(")
        elif m.group(2):
            tokens.append(")")
        elif m.group(3):
            tokens.append(m.group(3))
        else:
            name = m.group(5).split(":alarm:")[-1]
            tokens.append(("is", m.group(4), name))
        pos = m.end()

    def parse_or(i):
        value, i = parse_and(i)
        while i < len(tokens) and tokens[i] == "OR":
            right, i = parse_and(i + 1)
            value = value or right
        return value, i

    def parse_and(i):
        value, i = parse_not(i)
        while i < len(tokens) and tokens[i] == "AND":
            right, i = parse_not(i + 1)
            value = value and right
        return value, i

    def parse_not(i):
        if i < len(tokens) and tokens[i] == "NOT":
            value, i = parse_not(i + 1)
            return not value, i
        return parse_atom(i)

    def parse_atom(i):
        if i >= len(tokens):
            raise ValidationError(f"AlarmRule ends early: {rule}")
        token = tokens[i]
        if token == "(":
            value, i = parse_or(i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise ValidationError(f"Unbalanced parentheses in AlarmRule: {rule}")
            return value, i + 1
        if token in ("TRUE", "FALSE"):
            return token == "TRUE", i + 1
        if isinstance(token, tuple):
            return states.get(token[2]) == token[1], i + 1
        raise ValidationError(f"Unexpected {token} in AlarmRule: {rule}")

    value, end = parse_or(0)
    if end != len(tokens):
        raise ValidationError(f"Unexpected tokens at the end of AlarmRule: {rule}")
    return value


def rule_alarm_names(rule):
    """The alarm names (ARNs reduced to names) an AlarmRule refers to."""
    return [
        m.group(5).split(":alarm:")[-1]
        for m in _RULE_TOKENS.finditer(rule)
        if m.group(4)
    ]


def _long_time(value):
    return _utc(value).strftime("%A %d %B, %Y %H:%M:%S UTC")


def evaluate_composites(backend):
    """Re-evaluates every composite alarm until no state changes. A composite
    alarm is INSUFFICIENT_DATA only from its creation to its first evaluation:
    its rule is then TRUE (ALARM) or not (OK), whatever its children's states."""
    for _ in range(len(backend.alarms) + 1):
        changed = False
        states = {name: a.state_value for name, a in backend.alarms.items()}
        for alarm in list(backend.alarms.values()):
            if alarm.rule is None:
                continue
            state = "ALARM" if evaluate_rule(alarm.rule, states) else "OK"
            if alarm.state_value == state:
                continue
            children = [
                backend.alarms[n] for n in rule_alarm_names(alarm.rule) if n in backend.alarms
            ]
            triggering = [
                {
                    "arn": a.alarm_arn,
                    "state": {
                        "value": a.state_value,
                        "timestamp": _event_time(a.state_updated_timestamp),
                    },
                }
                for a in children
            ]
            latest = max(
                children, key=lambda a: _utc(a.state_updated_timestamp), default=None
            )
            reason = (
                f"{latest.alarm_arn} transitioned to {latest.state_value} at "
                f"{_long_time(latest.state_updated_timestamp)}"
                if latest is not None
                else f"Rule {alarm.rule} evaluated to {state == 'ALARM'}"
            )
            reason_data = json.dumps({"triggeringAlarms": triggering})
            changed |= transition(alarm, state, reason, reason_data)
        if not changed:
            return


# ---------------------------------------------------------------- operations


def describe_alarms(backend, request):
    """DescribeAlarms with AlarmTypes, MaxRecords and NextToken as AWS has them."""
    names = request.get("AlarmNames") or []
    if len(names) > 100:
        raise ValidationError("AlarmNames holds at most 100 names.")
    max_records = int(request.get("MaxRecords") or DEFAULT_MAX_RECORDS)
    if not 1 <= max_records <= MAX_RECORDS_LIMIT:
        raise ValidationError(
            f"1 validation error detected: Value '{max_records}' at 'maxRecords' failed "
            "to satisfy constraint: Member must have value less than or equal to 100"
        )
    types = request.get("AlarmTypes") or ["MetricAlarm"]
    alarms = list(backend.alarms.values())
    if names:
        alarms = [a for a in alarms if a.name in names]
    if request.get("AlarmNamePrefix"):
        alarms = [a for a in alarms if a.name.startswith(request["AlarmNamePrefix"])]
    if request.get("StateValue"):
        alarms = [a for a in alarms if a.state_value == request["StateValue"]]
    alarms = [
        a
        for a in sorted(alarms, key=lambda a: a.name)
        if ("CompositeAlarm" if a.rule is not None else "MetricAlarm") in types
    ]
    try:
        offset = int(request.get("NextToken") or 0)
    except ValueError:
        raise ValidationError("The NextToken is not valid.")
    page = alarms[offset : offset + max_records]
    following = offset + max_records
    return page, (str(following) if following < len(alarms) else None)


def put_composite_alarm(backend, request):
    """PutCompositeAlarm, which moto lacks: a moto alarm that carries a rule.
    CloudWatch refuses a rule (or ActionsSuppressor) naming an alarm that does
    not exist; a new composite alarm is INSUFFICIENT_DATA until evaluated."""
    rule = request.get("AlarmRule") or ""
    if not rule or len(rule) > 10240:
        raise ValidationError("AlarmRule must be 1 to 10240 characters long.")
    evaluate_rule(rule, {})  # refuse a rule that does not parse
    name = request["AlarmName"]
    unknown = [n for n in rule_alarm_names(rule) if n not in backend.alarms or n == name]
    if unknown:
        raise ValidationError(
            "Could not save the composite alarm as alarms "
            f"[{', '.join(dict.fromkeys(unknown))}] in the alarm rule do not exist"
        )
    suppressor = request.get("ActionsSuppressor")
    if suppressor:
        if suppressor.split(":alarm:")[-1] not in backend.alarms:
            raise ValidationError(
                f"Could not save the composite alarm as the actions suppressor "
                f"[{suppressor}] does not exist"
            )
        for key in ("ActionsSuppressorWaitPeriod", "ActionsSuppressorExtensionPeriod"):
            if request.get(key) is None:
                raise ValidationError(f"{key} is required when ActionsSuppressor is specified.")
    elif request.get("ActionsSuppressorWaitPeriod") is not None or request.get(
        "ActionsSuppressorExtensionPeriod"
    ) is not None:
        raise ValidationError(
            "ActionsSuppressorWaitPeriod and ActionsSuppressorExtensionPeriod are "
            "only valid with ActionsSuppressor."
        )
    alarm = backend.put_metric_alarm(
        name=name,
        namespace=None,
        metric_name=None,
        comparison_operator=None,
        evaluation_periods=None,
        period=None,
        threshold=None,
        statistic=None,
        description=request.get("AlarmDescription"),
        dimensions=[],
        alarm_actions=request.get("AlarmActions") or [],
        ok_actions=request.get("OKActions"),
        insufficient_data_actions=request.get("InsufficientDataActions"),
        actions_enabled=request.get("ActionsEnabled", True),
        rule=rule,
        tags=request.get("Tags"),
    )
    alarm.actions_suppressor = suppressor.split(":alarm:")[-1] if suppressor else None
    alarm.actions_suppressor_wait_period = (
        int(request["ActionsSuppressorWaitPeriod"]) if suppressor else None
    )
    alarm.actions_suppressor_extension_period = (
        int(request["ActionsSuppressorExtensionPeriod"]) if suppressor else None
    )
    return {}


# ---------------------------------------------------------------- PutMetricData limits

MAX_DATUMS = 1000
MAX_DIMENSIONS = 30
MAX_BODY_BYTES = 1024 * 1024
PAST = dt.timedelta(weeks=2)
FUTURE = dt.timedelta(hours=2)


def check_body_size(size):
    """PutMetricData "is limited to 1 MB in size for HTTP POST requests": the
    request as sent (gzipped or not)."""
    if size > MAX_BODY_BYTES:
        raise RequestTooLarge(f"Request size {size} exceeded {MAX_BODY_BYTES} bytes")


class RequestTooLarge(Exception):
    status = "413 Request Entity Too Large"
    code = "RequestEntityTooLarge"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def check_metric_data(region, metric_data):
    """1,000 datums a request, 30 dimensions a datum, time stamps from two
    weeks before today to two hours after now (the API reference's limits)."""
    if len(metric_data) > MAX_DATUMS:
        raise cw_models.InvalidParameterValue(
            f"The collection MetricData must not have a size greater than {MAX_DATUMS}."
        )
    now = clock.now(region)
    # "as much as two weeks before the current date, and as much as 2 hours
    # after the current day and time": the past is counted in days.
    earliest = now.replace(hour=0, minute=0, second=0, microsecond=0) - PAST
    for i, datum in enumerate(metric_data, start=1):
        dimensions = datum.get("Dimensions") or []
        if len(dimensions) > MAX_DIMENSIONS:
            raise cw_models.InvalidParameterValue(
                f"The collection MetricData.member.{i}.Dimensions must not have a size "
                f"greater than {MAX_DIMENSIONS}."
            )
        stamp = datum.get("Timestamp")
        if stamp is None:
            continue
        at = _utc(stamp)
        if at < earliest:
            raise cw_models.InvalidParameterValue(
                f"The parameter MetricData.member.{i}.Timestamp must specify a time "
                "no more than two weeks in the past."
            )
        if at > now + FUTURE:
            raise cw_models.InvalidParameterValue(
                f"The parameter MetricData.member.{i}.Timestamp must specify a time "
                "no more than two hours in the future."
            )


# ---------------------------------------------------------------- control API


def _evaluate_control(request, query):
    region = request.get("region") or ((query or {}).get("region") or [None])[0]
    with LOCK:
        return {"evaluated": evaluate_everywhere(region)}


def _actions_control(request, query):
    region = ((query or {}).get("region") or [None])[0]
    with LOCK:
        return {"actions": [a for a in ACTIONS if region in (None, a["region"])]}


def install():
    """Patches moto's CloudWatch backend: data in, states out on the clock."""
    faults.register_control("POST", "alarms/evaluate", _evaluate_control)
    faults.register_control("GET", "alarm-actions", _actions_control)
    clock.on_instant(lambda region: evaluate_everywhere(region))
    clock.start()

    original_put = cw_models.CloudWatchBackend.put_metric_data

    def put_metric_data(self, namespace, metric_data):
        # Stored only: alarms read it at their next evaluation instant.
        with LOCK:
            check_metric_data(self.region_name, metric_data)
            for datum in metric_data:
                if datum.get("Timestamp") is None:
                    datum["Timestamp"] = clock.now(self.region_name).replace(tzinfo=None)
            original_put(self, namespace, metric_data)

    original_put_alarm = cw_models.CloudWatchBackend.put_metric_alarm

    def put_metric_alarm(self, *args, **kwargs):
        with LOCK:
            name = kwargs.get("name", args[0] if args else None)
            before = self.alarms.get(name)
            rule = kwargs.get("rule")
            if rule is not None:
                evaluate_rule(rule, {})  # reject a rule that does not parse
            alarm = original_put_alarm(self, *args, **kwargs)
            if before is not None:
                # An update keeps the alarm's state; only its configuration changes.
                for field in (
                    "state_value",
                    "state_reason",
                    "state_reason_data",
                    "state_updated_timestamp",
                    "actions_suppressed_by",
                    "actions_suppressed_reason",
                    "pending_actions",
                ):
                    setattr(alarm, field, getattr(before, field, None))
                alarm.state_transitioned_timestamp = getattr(
                    before, "state_transitioned_timestamp", before.state_updated_timestamp
                )
            else:
                # "the alarm state is immediately set to INSUFFICIENT_DATA. The
                # alarm is then evaluated": at its next evaluation instant.
                alarm.state_value = "INSUFFICIENT_DATA"
                alarm.state_reason = "Unchecked: Initial alarm creation"
                alarm.state_updated_timestamp = _alarm_time(alarm)
                alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
            alarm.configuration_updated_timestamp = _alarm_time(alarm)
            return alarm

    def set_alarm_state(self, alarm_name, reason, reason_data, state_value):
        # "This temporary state change lasts only until the next alarm
        # comparison occurs"; composites see it at once.
        with LOCK:
            if reason_data is not None:
                try:
                    json.loads(reason_data)
                except ValueError:
                    raise cw_models.InvalidFormat("Unknown")
            alarm = self.alarms.get(alarm_name)
            if alarm is None:
                raise cw_models.ResourceNotFound
            transition(alarm, state_value, reason, reason_data)
            evaluate_composites(self)
            run_pending_actions(self)

    cw_models.CloudWatchBackend.put_metric_data = put_metric_data
    cw_models.CloudWatchBackend.put_metric_alarm = put_metric_alarm
    cw_models.CloudWatchBackend.set_alarm_state = set_alarm_state
