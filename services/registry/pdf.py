"""Printable documents: the e-certificate (with a QR code of its public verification URL) and the
附件2 filing form.

The Chinese text is set in WenQuanYi Micro Hei (文泉驿微米黑, a TrueType collection that the
``paperang-p2-fonts-cjk`` package installs with the project), embedded as a subset of the glyphs
used: every PDF reader shows the same characters on a fresh machine, with or without CJK fonts of
its own, and the text stays extractable (the PDF carries the Unicode mapping).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from importlib.resources import files

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from libs.common.clock import BEIJING
from services.registry.models import Certificate, Project
from services.registry.rules import KIND_LABELS, LEVEL_LABELS

FONT = "WenQuanYiMicroHei"
FONT_FILE = files("paperang_p2_fonts_cjk") / "fonts" / "wqy-microhei.ttc"
SUBJECT_LABELS = {"professional": "专业科目", "public": "公需科目"}
FORMS = {"online": "线上", "offline": "线下", "mixed": "线上线下结合"}
STATUS_LABELS = {
    "draft": "草稿",
    "submitted": "已提交",
    "approved": "已备案",
    "rejected": "不予备案",
    "returned": "退回修改",
    "valid": "有效",
    "revoked": "已撤销",
}


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT, str(FONT_FILE), subfontIndex=0))
    return FONT


def _hours(value: Decimal | float) -> str:
    return f"{Decimal(str(value)).normalize():f}"


def certificate_pdf(cert: Certificate, project: Project, masked_id: str, verify_url: str) -> bytes:
    font = _font()
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
    page.setTitle(f"继续教育电子证书 {cert.code}")
    width, height = A4
    page.setFont(font, 24)
    page.drawCentredString(width / 2, height - 40 * mm, "专业技术人员继续教育电子证书")
    programme = KIND_LABELS.get(project.kind, "")
    if project.level:
        programme += f"（{LEVEL_LABELS.get(project.level, project.level)}）"
    lines = [
        f"姓名：{cert.holder_name}",
        f"身份证号：{masked_id}",
        f"培训项目：{project.name}",
        f"项目类别：{programme}",
        f"培训时间：{project.start_date:%Y年%m月%d日} 至 {project.end_date:%Y年%m月%d日}",
        f"学时：{_hours(cert.hours)} 学时（{SUBJECT_LABELS.get(cert.subject, cert.subject)}，"
        f"{cert.year}年度）",
        f"证书编号：{cert.code}",
        f"状态：{STATUS_LABELS.get(cert.status, cert.status)}",
        f"发证日期：{cert.created_at.astimezone(BEIJING):%Y年%m月%d日}",
    ]
    page.setFont(font, 13)
    y = height - 65 * mm
    for line in lines:
        page.drawString(30 * mm, y, line)
        y -= 10 * mm
    qr = QrCodeWidget(verify_url)
    left, bottom, right, top = qr.getBounds()
    size = 40 * mm
    drawing = Drawing(
        size, size, transform=[size / (right - left), 0, 0, size / (top - bottom), 0, 0]
    )
    drawing.add(qr)
    renderPDF.draw(drawing, page, width - 30 * mm - size, 40 * mm)
    page.setFont(font, 10)
    page.drawString(30 * mm, 50 * mm, "扫描二维码或访问以下地址核验本证书：")
    page.drawString(30 * mm, 44 * mm, verify_url)
    page.drawString(30 * mm, 30 * mm, "枣庄市人力资源和社会保障局 继续教育学时管理平台")
    page.showPage()
    page.save()
    return buffer.getvalue()


def project_form_pdf(
    project: Project, applicant_name: str, steps: Sequence[tuple[str, str | None, datetime]]
) -> bytes:
    """The 附件2 table (专业技术人员继续教育培训项目备案表) filled in from the filing."""
    font = _font()
    body = ParagraphStyle("cell", fontName=font, fontSize=10.5, leading=15, wordWrap="CJK")
    title = ParagraphStyle("title", fontName=font, fontSize=18, leading=26, alignment=1)

    def p(text: str) -> Paragraph:
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return Paragraph(escaped.replace("\n", "<br/>"), body)

    programme = KIND_LABELS.get(project.kind, project.kind)
    if project.level:
        programme += f"（{LEVEL_LABELS.get(project.level, project.level)}）"
    rows = [
        [p("申报单位"), p(applicant_name), p("单位地址"), p(project.address)],
        [
            p("项目名称"),
            p(project.name),
            p("项目类别"),
            p(f"{programme}（{SUBJECT_LABELS.get(project.subject, project.subject)}）"),
        ],
        [p("项目负责人"), p(project.person_in_charge), p("联系人"), p(project.contact_name)],
        [
            p("联系电话"),
            p(project.contact_phone),
            p("是否申报市级高级研修班"),
            p("是" if project.advanced_seminar else "否"),
        ],
        [p("培训计划"), p(project.plan), "", ""],
        [
            p("培训对象"),
            p(project.target_trainees),
            p("计划人数"),
            p(str(project.planned_participants)),
        ],
        [
            p("计划培训时间"),
            p(f"{project.start_date:%Y年%m月%d日}至{project.end_date:%Y年%m月%d日}"),
            p("天数"),
            p(str(project.days)),
        ],
        [p("计划学时"), p(_hours(project.planned_hours)), p("培训地点"), p(project.venue)],
        [
            p("培训形式"),
            p(FORMS.get(project.form, project.form)),
            p("备案状态"),
            p(STATUS_LABELS.get(project.status, project.status)),
        ],
        [p("申报单位意见"), p(project.unit_opinion or "（盖章）"), "", ""],
        [p("人社部门意见"), p(project.opinion or "（盖章）"), "", ""],
    ]
    table = Table(rows, colWidths=[30 * mm, 60 * mm, 35 * mm, 45 * mm])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.6, colors.black),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("SPAN", (1, 4), (3, 4)),
                ("SPAN", (1, 9), (3, 9)),
                ("SPAN", (1, 10), (3, 10)),
            ]
        )
    )
    history = [
        p(f"{at.astimezone(BEIJING):%Y-%m-%d %H:%M} {action}{'：' + opinion if opinion else ''}")
        for action, opinion, at in steps
    ]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, title="专业技术人员继续教育培训项目备案表", author="registry"
    )
    doc.build(
        [
            Paragraph(f"{project.year}年度专业技术人员继续教育培训项目备案表", title),
            Spacer(1, 6 * mm),
            table,
            Spacer(1, 6 * mm),
            *history,
        ]
    )
    return buffer.getvalue()
