"""The structured body of each document kind, from the facts and the wording."""

from __future__ import annotations

from synthetic.documents.markup import (
    dx_entries,
    dx_items,
    dx_label,
    items_list,
    jdate,
    join_ja,
    lab_table,
    paras,
    rx_entries,
    rx_table,
    section,
    to_jst,
)
from synthetic.documents.spec import DocumentSpec
from synthetic.documents.wording import (
    FEVERISH,
    Ctx,
    course_lines,
    lab_text,
    latest_abnormal,
    plan_lines,
    vitals,
)


def discharge_summary(c: Ctx) -> str:
    s, rng = c.spec, c.rng
    assert c.admitted is not None
    assert c.discharged is not None
    adm, dis = c.admitted.date(), c.discharged.date()
    stay = (dis - adm).days + 1
    at_admission = [d for d in s.diagnoses if d.onset is None or d.onset <= adm] or s.diagnoses[:1]
    period = items_list(
        [
            f"入院日：{jdate(adm)}",
            f"退院日：{jdate(dis)}（在院日数 {stay}日）",
            f"診療科：{s.author.department_name}　主治医：{c.doctor}",
            f"病期：{s.state_title}（入院{s.day}日目に退院）",
        ]
    )
    reason = paras(
        [
            f"主訴：{c.complaint}",
            rng.choice(
                (
                    f"入院理由：{c.complaint}を認め、{c.main}の加療目的に入院となった。",
                    f"入院理由：{c.main}に対する精査および治療のため。",
                )
            ),
        ]
    )
    until = rng.choice((f"{jdate(dis)}に退院とした。", f"{jdate(dis)}退院となった。"))
    course = paras(course_lines(c, until=until))
    if s.drugs:
        rx = rx_table(s.drugs, "rx") + paras([f"以上{len(s.drugs)}剤を処方した。"])
    else:
        rx = paras(["退院時処方なし。"])
    plan = plan_lines(c)
    return "".join(
        (
            section("入院期間", period),
            section(
                "入院時診断",
                dx_items(at_admission, "adx", False),
                ("46241-6", "Hospital admission diagnosis"),
            ),
            section(
                "退院時診断",
                dx_items(s.diagnoses, "dx", True),
                ("11535-2", "Hospital discharge diagnosis"),
                dx_entries(s.diagnoses, "dx"),
            ),
            section("主訴・入院理由", reason, ("10154-3", "Chief complaint")),
            section("入院後経過", course, ("8648-8", "Hospital course")),
            section(
                "退院時処方",
                rx,
                ("10183-2", "Hospital discharge medications"),
                rx_entries(s.drugs, "rx", dis),
            ),
            section("今後の方針", paras(plan), ("18776-5", "Plan of care")),
        )
    )


def referral_letter(c: Ctx) -> str:
    s, rng = c.spec, c.rng
    assert s.recipient is not None
    dept = s.recipient_department or "ご担当科"
    address = paras(
        [
            s.recipient.name,
            f"{dept}　ご担当先生　御侍史",
            f"紹介元：{s.custodian.name}　{s.author.department_name}　{c.doctor}",
        ]
    )
    plan = s.plan_title or "継続診療"
    purpose = paras(
        [
            rng.choice(("平素より大変お世話になっております。", "いつも大変お世話になっております。")),
            rng.choice(
                (
                    f"{c.main}の患者様について、{plan}をお願いいたしたくご紹介申し上げます。",
                    f"{c.main}にて当院で加療中の患者様です。{plan}をお願いしたく、ご紹介いたします。",
                )
            ),
        ]
    )
    others = s.diagnoses[1:]
    history = (
        items_list([dx_label(d) + (f"（{jdate(d.onset)}発症）" if d.onset else "") for d in others])
        if others
        else paras(["特記すべき既往歴なし。"])
    )
    until = (
        rng.choice(
            (
                f"{jdate(c.discharged.date())}に退院予定である。",
                f"{jdate(c.discharged.date())}退院となった。",
            )
        )
        if c.discharged is not None
        else "現在も外来で経過を診ている。"
    )
    course = paras(course_lines(c, until=until))
    rx = rx_table(s.drugs, "rx") if s.drugs else paras(["現在、定期処方はありません。"])
    tests = _referral_tests(c.spec)
    request = [
        rng.choice(
            (
                f"お忙しいところ恐縮ですが、{plan}についてご高配を賜りますようお願い申し上げます。",
                f"{plan}につきまして、よろしくご指導のほどお願いいたします。",
            )
        ),
        rng.choice(
            (
                "処方内容は上記のとおりです。ご不明な点がございましたら当院までお問い合わせください。",
                "画像および検査結果の詳細は別途お送りいたします。",
            )
        ),
        "ご高診のほどよろしくお願い申し上げます。",
    ]
    start = (c.discharged or s.time).date()
    return "".join(
        (
            section("宛先", address),
            section("紹介目的", purpose, ("42349-1", "Reason for referral")),
            section(
                "傷病名",
                dx_items(s.diagnoses, "dx", True),
                ("11450-4", "Problem list"),
                dx_entries(s.diagnoses, "dx"),
            ),
            section("既往歴・併存症", history, ("11348-0", "History of past illness")),
            section("現病歴・経過", course, ("10164-2", "History of present illness")),
            section(
                "現在の処方", rx, ("10160-0", "History of medication use"), rx_entries(s.drugs, "rx", start)
            ),
            section("検査結果", tests, ("30954-2", "Relevant diagnostic tests/laboratory data")),
            section("依頼事項", paras(request)),
        )
    )


def _referral_tests(s: DocumentSpec) -> str:
    """The letter's test results: the lab table, the procedures by date and what is still abnormal."""
    if not s.labs and not s.procedures:
        return paras(["特記すべき検査結果はありません。"])
    tests = lab_table(s.labs) if s.labs else ""
    if s.procedures:
        ordered = sorted(s.procedures, key=lambda p: p.time)
        tests += items_list([f"{jdate(to_jst(p.time).date())}　{p.name}" for p in ordered])
    abnormal = latest_abnormal(s.labs)
    if abnormal:
        tests += paras([f"注目すべき所見：{join_ja([lab_text(v) for v in abnormal])}"])
    return tests


def progress_note(c: Ctx) -> str:
    s, rng = c.spec, c.rng
    improving = s.day > 2
    subjective = [
        rng.choice(
            (
                f"{c.complaint}は{'入院時より軽快している' if improving else 'まだ残っている'}とのこと。",
                f"「{'だいぶ楽になりました' if improving else 'まだつらいです'}」との訴えあり。",
                f"{'症状は落ち着いている' if improving else '症状の改善は乏しい'}と本人より。",
            )
        ),
        rng.choice(
            ("夜間は良眠できている。", "食事は7割程度摂取。", "疼痛の訴えなし。", "夜間に数回覚醒あり。")
        ),
    ]
    bt, bp, hr, spo2, rr = vitals(rng, not improving and any(k in c.main for k in FEVERISH))
    objective = [f"体温 {bt}、血圧 {bp}、脈拍 {hr}、SpO2 {spo2}、呼吸数 {rr}。"]
    objective.append(rng.choice(("意識清明。", "意識清明、会話良好。", "表情穏やか。")))
    abnormal = latest_abnormal(s.labs)
    if abnormal:
        objective.append(f"検査：{join_ja([lab_text(v) for v in abnormal])}。")
    elif s.labs:
        objective.append("検査：明らかな異常値なし。")
    today = [p for p in s.procedures if to_jst(p.time).date() == to_jst(s.time).date()]
    if today:
        objective.append(f"本日{join_ja([p.name for p in today])}を施行。")
    assessment_items = [
        f"#{i} {dx_label(d)}："
        + (
            rng.choice(("改善傾向。", "経過良好。", "安定している。"))
            if improving
            else rng.choice(("治療継続中。", "経過観察を要する。"))
        )
        for i, d in enumerate(s.diagnoses, 1)
    ]
    assessment_items.append(f"{s.state_title} {s.day}日目。")
    plan = [rng.choice(("現治療を継続。", "現行の治療方針を継続する。"))]
    if s.drugs:
        plan.append(f"{join_ja([r.name for r in s.drugs])}を継続。")
    if abnormal:
        plan.append(f"{join_ja([v.name for v in abnormal])}を再検する。")
    if s.plan_title:
        plan.append(f"{s.plan_title}に向けて調整を進める。")
    return "".join(
        (
            section("S（主観的情報）", paras(subjective), ("61150-9", "Subjective")),
            section("O（客観的情報）", paras(objective), ("61149-1", "Objective")),
            section(
                "A（評価）",
                dx_items(s.diagnoses, "dx", True) + paras(assessment_items),
                ("51848-0", "Assessment"),
                dx_entries(s.diagnoses, "dx"),
            ),
            section("P（計画）", paras(plan), ("18776-5", "Plan of care")),
        )
    )


_STROKE_CARE = ("2時間毎の体位変換", "口腔ケア", "嚥下状態に合わせた食事介助", "麻痺側上下肢の良肢位保持")
_GENERAL_CARE = ("全身清拭", "転倒予防のための環境整備", "排泄介助", "点滴刺入部の観察", "歩行時の見守り")


def nursing_note(c: Ctx) -> str:
    s, rng = c.spec, c.rng
    feverish = s.day <= 2 and any(k in c.main for k in FEVERISH)
    bt, bp, hr, spo2, rr = vitals(rng, feverish)
    observe = [
        f"{join_ja([dx_label(d) for d in s.diagnoses]) or c.main}にて{s.state_title}中（{s.day}日目）。",
        f"体温 {bt}、血圧 {bp}、脈拍 {hr}・整、SpO2 {spo2}（室内気）、呼吸数 {rr}。",
        rng.choice(
            ("意識清明。顔色良好。", "意識清明、疼痛の訴えなし。", "倦怠感の訴えあるが、表情は穏やか。")
        ),
    ]
    abnormal = latest_abnormal(s.labs)
    if abnormal:
        observe.append(f"検査値：{join_ja([lab_text(v) for v in abnormal])}。")
    stroke = any(k in c.main for k in ("脳", "麻痺", "嚥下", "構音", "失語"))
    pool = _STROKE_CARE + _GENERAL_CARE[:2] if stroke else _GENERAL_CARE
    care = rng.sample(pool, k=min(3, len(pool)))
    if s.drugs:
        care.append(f"服薬管理（{join_ja([r.name for r in s.drugs])}）")
    reaction = [
        rng.choice(
            (
                "ケアに対して協力的で、「ありがとう」との発言あり。",
                "説明に対してうなずきがあり、理解は良好。",
                "やや疲労感の訴えあり、休息を促した。",
                "表情穏やかで、自ら体動を試みる様子がみられる。",
            )
        )
    ]
    handover = [
        rng.choice(
            ("バイタルサインの変動に注意。", "転倒リスクあり、離床時は付き添い。", "夜間の睡眠状況を観察。")
        ),
    ]
    if abnormal:
        handover.append(f"{join_ja([v.name for v in abnormal])}の異常値あり、次回採血結果を確認。")
    if s.plan_title:
        handover.append(f"{s.plan_title}に向けた調整中。")
    return "".join(
        (
            section("観察項目", paras(observe), ("8716-3", "Vital signs")),
            section("ケア内容", items_list(care), ("62387-6", "Interventions provided")),
            section("患者の反応", paras(reaction)),
            section("申し送り", paras(handover)),
        )
    )
