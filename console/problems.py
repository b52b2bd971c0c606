"""A service's refusal as the console shows it: ``ApiProblem(status, code, detail)`` from the
RFC 9457 problem document, with a Chinese message per known ``code`` (the service's own detail,
which follows ``Accept-Language: zh-CN``, as the fallback)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

MESSAGES: dict[str, str] = {
    # sign-in and scope
    "missing_token": "请先登录。",
    "invalid_token": "登录已失效，请重新登录。",
    "role_not_allowed": "当前角色无权进行此操作。",
    "outside_scope": "该记录不在您的管辖范围内。",
    "csrf_failed": "页面已过期，请刷新后重试。",
    "console_unavailable": "服务暂时不可用，请稍后重试。",
    "temporarily_unavailable": "服务暂时不可用，请稍后重试。",
    "validation_error": "填写的内容不符合要求，请检查后重试。",
    # review
    "task_not_found": "审核任务不存在。",
    "task_not_open": "该申报已处理，不能重复审核。",
    "reason_required": "驳回时必须填写驳回理由。",
    "invalid_decision": "审核结论无效。",
    "claim_not_found": "申报记录不存在。",
    "claim_not_open": "该申报已不在审核中。",
    "evidence_not_found": "材料不存在。",
    "evidence_file_missing": "材料文件缺失。",
    "invalid_cursor": "分页参数无效，请返回第一页。",
    "invalid_limit": "每页条数无效。",
    "filter_required": "请至少选择一个筛选条件。",
    "invalid_date_range": "开始日期不能晚于结束日期。",
    "invalid_date": "日期格式不正确。",
    "invalid_period": "时间范围无效：结束日期不能早于开始日期，跨度不超过一年。",
    # orgs
    "org_not_found": "机构不存在。",
    "unknown_org": "机构不存在或尚未同步。",
    "org_inactive": "机构已停用。",
    "parent_inactive": "上级机构已停用。",
    "org_cycle": "不能把机构移动到其下级机构之下。",
    "duplicate_org_code": "机构代码已存在。",
    "unknown_parent_org": "上级机构不存在。",
    "invalid_org_type": "机构类型无效。",
    "invalid_org_parent": "上级机构类型不符合要求。",
    "import_rejected": "导入未完成：文件中有错误，全部未导入。",
    "file_required": "请选择要上传的文件。",
    "empty_file": "文件为空。",
    "file_too_large": "文件过大。",
    "too_many_rows": "文件行数过多。",
    "bad_header": "文件表头不正确。",
    "unreadable_workbook": "无法读取该 Excel 文件。",
    "unreadable_encoding": "无法识别文件编码，请使用 UTF-8 或 GBK。",
    # registry
    "project_not_found": "备案项目不存在。",
    "project_not_editable": "该项目当前不能修改。",
    "project_not_submitted": "该项目尚未提交备案。",
    "project_not_approved": "该项目尚未通过备案。",
    "opinion_required": "退回或驳回时必须填写审核意见。",
    "filing_deadline_passed": "已超过备案时限。",
    "not_applicant": "只有申报单位可以操作该项目。",
    "certificate_not_found": "证书不存在。",
    "certificate_revoked": "证书已撤销。",
    # claims
    "person_not_found": "人员不存在。",
    "duplicate_person": "该人员已登记。",
    "invalid_id_number": "身份证号码无效。",
    "window_closed": "申报期已结束。",
    "daily_cap_exceeded": "超过每日学时上限。",
    "yearly_cap_reached": "已达到年度学时上限。",
    "evidence_required": "需要上传证明材料。",
    # sync / ops
    "dead_letter_not_found": "死信不存在。",
    "replay_failed": "重放失败。",
    "province_unavailable": "省平台暂时不可用。",
    # the city bureau's and CE bases' pages
    "rate_limited": "请求过于频繁，请稍后再试。",
    "applicant_org_immutable": "申报单位不能更改。",
    "days_mismatch": "培训天数与计划培训时间不符。",
    "date_outside_year": "培训时间必须在申报年度内。",
    "invalid_hours": "学时数无效。",
    "invalid_phone": "联系电话格式不正确。",
    "invalid_planned_participants": "计划培训人数必须大于0。",
    "invalid_project_kind": "项目类别无效。",
    "invalid_project_level": "数字化管理师培训须选择级别（初级或中级），其他项目不选级别。",
    "invalid_project_subject": "该类项目不能选择此学时科目。",
    "invalid_assignee": "只能分配给启用中的区（市）人社局或市直主管部门。",
    "not_assignable": "该任务不能分配。",
}


class ApiProblem(Exception):
    """A refusal from a service (or the console itself), shown on the page it came from."""

    def __init__(
        self, status: int, code: str, detail: str = "", document: dict[str, object] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        # the whole problem document: some carry more than the detail (an import's bad rows)
        self.document: dict[str, object] = document or {}

    @property
    def message(self) -> str:
        """The Chinese message for this code, else the service's own detail."""
        return MESSAGES.get(self.code) or self.detail or f"操作失败（{self.code}）。"

    @classmethod
    def from_document(cls, status: int, body: object) -> ApiProblem:
        if isinstance(body, dict):
            code = str(body.get("code") or f"http_{status}")
            detail = body.get("detail")
            return cls(status, code, detail if isinstance(detail, str) else "", body)
        return cls(status, f"http_{status}", "")


async def optional(call: Awaitable[T]) -> T | None:
    """A part of a page the user may lack: its refusal leaves ``None`` (the page still shows the
    rest), except a 401, which still signs the user out."""
    try:
        return await call
    except ApiProblem as exc:
        if exc.status == 401:
            raise
        return None
