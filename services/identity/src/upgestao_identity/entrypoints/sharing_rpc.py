"""RPC methods through which the integrations service opens what it shares (issue 15, mixed into the
service): a customer's shareable fields (R4.1), each opening audited as a ``share`` with the integration as
recipient (R4.2)."""

from __future__ import annotations

from upgestao_kernel.nameko_ext import rpc

from ..service_layer import sharing


class SharingRpc:
    """Mixed into :class:`~upgestao_identity.service.IdentityService`."""

    @rpc(keep_reply=False)  # a reply holding customers' e-mails, names and phones is never stored
    def share_subjects(self, subject_ids: list, fields: list, recipient: str, purpose: str) -> dict:
        """The ``fields`` (email, name, phone) of each active customer of ``subject_ids`` for ``recipient``
        (``integration:<id>``): ``{"subjects": {id: {field: value|None} | None}}``; audited ``share``."""
        with self._uow() as uow:  # type: ignore[attr-defined]
            return sharing.share_subjects(uow, subject_ids, fields, recipient, purpose)

    @rpc
    def staff_ids(self, permission: str) -> dict:
        """``{"ids": [...]}``: the active staff users whose role holds ``permission``."""
        with self._uow() as uow:  # type: ignore[attr-defined]
            return sharing.staff_ids(uow, permission)
