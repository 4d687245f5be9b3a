"""Japanese wording shared by the narratives: complaints, diagnosis and lab phrases, the clinical course."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass

from synthetic.documents.markup import dx_label, jdate, join_ja, month_day, to_jst
from synthetic.documents.spec import DocumentSpec, Lab

# -- wording ----------------------------------------------------------------------------------------

# Presenting complaints by diagnosis keyword, most specific first.
_COMPLAINTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("くも膜下出血",), ("突然発症の激しい頭痛と嘔吐", "突然の頭痛と意識障害")),
    (
        ("後遺症", "片麻痺", "失語", "構音障害", "嚥下障害"),
        ("片麻痺と日常生活動作の低下", "歩行障害と構音障害"),
    ),
    (("一過性脳虚血",), ("一過性の片側上下肢脱力", "短時間で改善した構音障害")),
    (("出血",), ("突然の片麻痺と構音障害", "頭痛と片側上下肢の脱力")),
    (("梗塞", "塞栓"), ("片側上下肢の脱力と構音障害", "急に生じた右上下肢の麻痺", "呂律困難とふらつき")),
    (("誤嚥性肺炎",), ("発熱とむせこみ", "発熱と湿性咳嗽")),
    (("肺炎",), ("発熱、咳嗽、呼吸困難", "発熱と湿性咳嗽")),
    (("気管支", "上気道", "インフルエンザ"), ("発熱と咳嗽", "咽頭痛と発熱")),
    (("腎盂腎炎", "尿路感染", "膀胱炎"), ("発熱と排尿時痛", "発熱と腰背部痛")),
    (("膵炎",), ("心窩部から背部に放散する痛み",)),
    (("胆",), ("右季肋部痛と発熱", "心窩部痛と発熱")),
    (("虫垂炎",), ("右下腹部痛",)),
    (("イレウス",), ("腹部膨満と嘔吐",)),
    (("骨折",), ("転倒後の疼痛と歩行困難", "転倒後からの強い痛み")),
    (("心筋梗塞",), ("胸痛と冷汗",)),
    (("心不全",), ("労作時の息切れと下腿浮腫", "呼吸困難と体重増加")),
    (("潰瘍",), ("心窩部痛と黒色便",)),
    (("胃腸炎", "大腸炎"), ("下痢と嘔吐",)),
    (("脱水",), ("食思不振と倦怠感",)),
    (("敗血症",), ("発熱と意識レベルの低下",)),
    (("肝", "ＨＢＶ", "ＨＣＶ"), ("肝機能異常", "全身倦怠感と肝機能障害")),
    (("糖尿病",), ("血糖コントロール不良",)),
    (("高血圧",), ("家庭血圧の高値",)),
)

FEVERISH = ("炎", "感染", "敗血症", "インフルエンザ")


def presenting_complaint(name: str, rng: random.Random) -> str:
    for keys, options in _COMPLAINTS:
        if any(k in name for k in keys):
            return rng.choice(options)
    return f"{name}の精査加療"


def _numeric(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def lab_text(lab: Lab) -> str:
    mark = {"H": "（高値）", "L": "（低値）", "A": "（異常）"}.get(lab.flag, "")
    return f"{lab.name} {lab.value}{' ' + lab.unit if lab.unit else ''}{mark}"


def lab_trends(labs: Sequence[Lab]) -> list[str]:
    """One phrase per lab measured more than once: the first and last values and the direction."""
    series: dict[str, list[Lab]] = {}
    for lab in sorted(labs, key=lambda v: v.time):
        series.setdefault(lab.name, []).append(lab)
    out: list[str] = []
    for name, values in series.items():
        if len(values) < 2:
            continue
        first, last = values[0], values[-1]
        a, b = _numeric(first.value), _numeric(last.value)
        unit = f" {last.unit}" if last.unit else ""
        if a is None or b is None or a == b:
            out.append(f"{name}は{last.value}{unit}前後で推移")
        else:
            out.append(f"{name}が{first.value}{unit}から{last.value}{unit}へ{'上昇' if b > a else '低下'}")
    return out


def latest_abnormal(labs: Sequence[Lab]) -> list[Lab]:
    """The latest result of each test, if it is out of range."""
    latest: dict[str, Lab] = {}
    for lab in sorted(labs, key=lambda v: v.time):
        latest[lab.name] = lab
    return [lab for lab in latest.values() if lab.flag != "N"]


def vitals(rng: random.Random, feverish: bool) -> tuple[str, str, str, str, str]:
    """Plausible vital signs (body temperature, BP, pulse, SpO2, respiration) as display strings."""
    bt = rng.uniform(37.4, 38.4) if feverish else rng.uniform(36.1, 37.1)
    sys_bp = rng.randint(106, 152)
    return (
        f"{bt:.1f}℃",
        f"{sys_bp}/{rng.randint(58, min(96, sys_bp - 30))}mmHg",
        f"{rng.randint(60, 96)}回/分",
        f"{rng.randint(94, 99)}%",
        f"{rng.randint(14, 20)}回/分",
    )


@dataclass(slots=True)
class Ctx:
    """Facts derived once per document and shared by the narrative builders."""

    spec: DocumentSpec
    rng: random.Random
    main: str
    complaint: str
    doctor: str
    admitted: dt.datetime | None
    discharged: dt.datetime | None


def course_lines(c: Ctx, *, until: str) -> list[str]:
    """The clinical course (入院後経過 / 経過): admission, procedures, lab trends, state and day count."""
    s, rng = c.spec, c.rng
    lines: list[str] = []
    if c.admitted is not None:
        adm = jdate(c.admitted.date())
        lines.append(
            rng.choice(
                (
                    f"{adm}、{c.complaint}を主訴に来院し、{c.main}と診断され同日入院となった。",
                    f"{c.complaint}のため{adm}に当院{s.author.department_name}へ入院。精査の結果{c.main}と診断した。",
                    f"{adm}に{c.main}の診断で{s.author.department_name}に入院となった。"
                    f"入院時は{c.complaint}を認めていた。",
                )
            )
        )
    else:
        lines.append(
            rng.choice(
                (
                    f"{c.main}にて当院{s.author.department_name}で{s.state_title}を行っている。",
                    f"{c.complaint}を契機に{c.main}と診断され、当院で{s.state_title}中である。",
                )
            )
        )
    others = [dx_label(d) for d in s.diagnoses[1:]]
    if others:
        lines.append(
            rng.choice(
                (
                    f"併存症として{join_ja(others)}があり、従来の治療を継続した。",
                    f"{join_ja(others)}を合併しており、並行して管理を行った。",
                )
            )
        )
    if s.procedures:
        procs = [
            f"{month_day(to_jst(p.time).date())}に{p.name}"
            for p in sorted(s.procedures, key=lambda p: p.time)
        ]
        lines.append(
            rng.choice(
                (
                    f"検査として{join_ja(procs)}を施行し、所見を踏まえて治療方針を決定した。",
                    f"{join_ja(procs)}を実施した。結果は治療方針の決定と効果判定に用いた。",
                )
            )
        )
    trends = lab_trends(s.labs)
    if trends:
        lines.append(f"血液検査では、{join_ja(trends)}した。")
    abnormal = latest_abnormal(s.labs)
    if abnormal:
        found = join_ja([lab_text(v) for v in abnormal])
        lines.append(
            rng.choice(
                (
                    f"直近の検査で{found}を認め、引き続き経過観察を要する。",
                    f"なお{found}であり、今後も再検が必要である。",
                )
            )
        )
    elif s.labs:
        lines.append("直近の血液検査に明らかな異常値は認めない。")
    lines.append(
        rng.choice(
            (
                f"{s.state_title}として{s.day}日目の時点で全身状態は安定しており、{until}",
                f"{s.state_title}開始から{s.day}日が経過し、症状は改善傾向にある。{until}",
                f"{s.day}日間の{s.state_title}により状態は安定した。{until}",
            )
        )
    )
    return lines


def plan_lines(c: Ctx) -> list[str]:
    s, rng = c.spec, c.rng
    lines: list[str] = []
    where = s.recipient.name if s.recipient else ""
    dept = f"（{s.recipient_department}）" if s.recipient and s.recipient_department else ""
    if s.plan_title and where:
        lines.append(
            rng.choice(
                (
                    f"退院後は{where}{dept}へご紹介のうえ、{s.plan_title}とする方針である。",
                    f"{where}{dept}へ診療情報を提供し、{s.plan_title}へ移行する予定。",
                )
            )
        )
    elif s.plan_title:
        lines.append(f"今後は{s.plan_title}へ移行する方針である。")
    else:
        lines.append(f"当院{s.author.department_name}外来にて経過観察を継続する。")
    if s.drugs:
        lines.append(
            rng.choice(
                (
                    "退院時処方を継続し、服薬状況を確認していただく。",
                    "処方内容は退院時処方のとおり継続とする。",
                )
            )
        )
    if latest_abnormal(s.labs):
        lines.append(
            rng.choice(("異常値の残る検査項目は次回受診時に再検する。", "検査値の推移を外来で確認する。"))
        )
    return lines
