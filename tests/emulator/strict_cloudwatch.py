"""CloudWatch as strict as AWS where the functions depend on it.

moto stores datapoints and alarms but never evaluates an alarm, lets
SetAlarmState rewrite the reason of an alarm that stays in its state, has no
PutCompositeAlarm, ignores AlarmTypes and never pages DescribeAlarms. This
module adds, on moto's own backend:

- alarm evaluation from datapoints (after every PutMetricData): the state and
  its StateReasonData change only on a transition, in AWS's reason-data shape;
- composite alarms, evaluated from their rule whenever a child changes state;
- GetMetricData for metric stat queries and arithmetic metric math;
- DescribeAlarms with AlarmTypes (metric alarms only when omitted), MaxRecords
  (1..100, default 50) and NextToken.

Evaluation runs when data arrives, at the newest datapoint of the metric (a
stand-in for AWS's once-a-period evaluation against the clock).
"""

import ast
import datetime as dt
import json
import math
import re
import threading

from moto.cloudwatch import models as cw_models
from moto.cloudwatch.exceptions import ValidationError
from moto.core.utils import utcnow

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


def metric_series(backend, namespace, name, dimensions, stat, period, start, end):
    """{period start epoch: value} over [start, end), periods aligned to `period`."""
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
        buckets.setdefault(int(at // period) * period, []).append(datum)
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


def run_queries(backend, queries, start, end):
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


def _alarm_series(backend, alarm, start, end):
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
        series = run_queries(backend, queries, start, end)
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
        ),
        int(alarm.period),
    )


def _alarm_watches(alarm, namespace, name, dimensions):
    if alarm.rule is not None:
        return False
    wanted = _dimension_set(dimensions)
    if alarm.metric_data_queries:
        return any(
            q.metric_stat
            and q.metric_stat.metric.namespace == namespace
            and q.metric_stat.metric.metric_name == name
            and _dimension_set(q.metric_stat.metric.dimensions) == wanted
            for q in alarm.metric_data_queries
        )
    return (
        alarm.namespace == namespace
        and alarm.metric_name == name
        and _dimension_set(alarm.dimensions) == wanted
    )


def _newest_datapoint(backend, alarm):
    newest = None
    for datum in backend.metric_data:
        dims = [{"Name": d.name, "Value": d.value} for d in datum.dimensions]
        if _alarm_watches(alarm, datum.namespace, datum.name, dims):
            at = _epoch(datum.timestamp)
            newest = at if newest is None else max(newest, at)
    return newest


def transition(alarm, state, reason, reason_data):
    """Moves an alarm to `state`; a call that keeps the state changes nothing."""
    if alarm.state_value == state:
        return False
    alarm.update_state(reason, reason_data, state)
    alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
    return True


def evaluate_metric_alarm(backend, alarm, newest):
    """Evaluates `alarm` over its last evaluation periods ending at `newest`."""
    compare, words = _COMPARISONS.get(alarm.comparison_operator, (None, None))
    if compare is None:
        return False
    period = _alarm_period(alarm)
    periods = int(alarm.evaluation_periods or 1)
    last = int(newest // period) * period
    first = last - (periods - 1) * period
    series, _ = _alarm_series(backend, alarm, first, last + period)
    needed = int(alarm.datapoints_to_alarm or periods)
    missing = alarm.treat_missing_data or "missing"
    threshold = float(alarm.threshold)
    evaluated = []
    breaching = 0
    present = 0
    for start in range(last, first - 1, -period):
        value = series.get(start)
        if value is None:
            if missing == "breaching":
                breaching += 1
            continue
        present += 1
        evaluated.append((start, value))
        if compare(value, threshold):
            breaching += 1
    if breaching >= needed:
        state = "ALARM"
    elif present or missing == "notBreaching":
        state = "OK"
    else:
        state = "INSUFFICIENT_DATA"
    shown = ", ".join(
        f"{v} ({(EPOCH + dt.timedelta(seconds=t)).strftime('%d/%m/%y %H:%M:%S')})"
        for t, v in evaluated
    )
    reason = (
        f"Threshold Crossed: {breaching} out of the last {periods} datapoints "
        f"[{shown}] was {'' if state == 'ALARM' else 'not '}{words} the threshold "
        f"({threshold}) (minimum {needed} datapoint for transition)."
    )
    reason_data = json.dumps(
        {
            "version": "1.0",
            "queryDate": _reason_time(utcnow()),
            "startDate": _reason_time(EPOCH + dt.timedelta(seconds=first)),
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


def evaluate_composites(backend):
    """Re-evaluates every composite alarm until no state changes."""
    for _ in range(len(backend.alarms) + 1):
        changed = False
        states = {name: a.state_value for name, a in backend.alarms.items()}
        for alarm in list(backend.alarms.values()):
            if alarm.rule is None:
                continue
            state = "ALARM" if evaluate_rule(alarm.rule, states) else "OK"
            triggering = [
                {"arn": a.alarm_arn, "state": {"value": a.state_value}}
                for a in backend.alarms.values()
                if a.rule is None and a.name in alarm.rule
            ]
            reason_data = json.dumps({"triggeringAlarms": triggering})
            changed |= transition(
                alarm, state, f"Rule {alarm.rule} is {state == 'ALARM'}", reason_data
            )
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
    """PutCompositeAlarm, which moto lacks: a moto alarm that carries a rule."""
    rule = request.get("AlarmRule") or ""
    if not rule or len(rule) > 10240:
        raise ValidationError("AlarmRule must be 1 to 10240 characters long.")
    backend.put_metric_alarm(
        name=request["AlarmName"],
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
    return {}


def install():
    """Patches moto's CloudWatch backend (data in, states out)."""
    original_put = cw_models.CloudWatchBackend.put_metric_data

    def put_metric_data(self, namespace, metric_data):
        with LOCK:
            original_put(self, namespace, metric_data)
            touched = {}
            for m in metric_data:
                key = (m["MetricName"], _dimension_set(m.get("Dimensions")))
                at = _epoch(m.get("Timestamp") or utcnow())
                touched[key] = max(touched.get(key, at), at)
            for (name, dims), newest in touched.items():
                dimensions = [{"Name": k, "Value": v} for k, v in dims]
                for alarm in list(self.alarms.values()):
                    if _alarm_watches(alarm, namespace, name, dimensions):
                        evaluate_metric_alarm(self, alarm, newest)
            evaluate_composites(self)

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
                ):
                    setattr(alarm, field, getattr(before, field))
                alarm.state_transitioned_timestamp = getattr(
                    before, "state_transitioned_timestamp", before.state_updated_timestamp
                )
            else:
                alarm.state_value = "INSUFFICIENT_DATA"
                alarm.state_reason = "Unchecked: Initial alarm creation"
                alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
            newest = _newest_datapoint(self, alarm)
            if newest is not None:
                evaluate_metric_alarm(self, alarm, newest)
            evaluate_composites(self)
            return alarm

    def set_alarm_state(self, alarm_name, reason, reason_data, state_value):
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

    cw_models.CloudWatchBackend.put_metric_data = put_metric_data
    cw_models.CloudWatchBackend.put_metric_alarm = put_metric_alarm
    cw_models.CloudWatchBackend.set_alarm_state = set_alarm_state
