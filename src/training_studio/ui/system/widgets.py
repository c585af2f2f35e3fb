"""The machine in the window: `SystemStatusButton` (a flat status-bar button with the one-line summary and
a tooltip; a click opens the details) and `SystemDetailsDialog` (host, disk and a table of every GPU;
with a Ray server the cluster and a table of its nodes, issue 18), both fed by `SystemStore`'s signals;
neither calls HTTP."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.contract import SystemInfo
from training_studio.ui.system.store import SystemStore
from training_studio.ui.system.summary import (
    GPU_HEADERS,
    NODE_HEADERS,
    cluster_text,
    format_bytes,
    gpu_rows,
    node_rows,
    status_summary,
    status_tooltip,
)

__all__ = ["SystemStatusButton", "SystemDetailsDialog"]


class SystemStatusButton(QToolButton):
    def __init__(self, store: SystemStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.setAutoRaise(True)
        self.setObjectName("systemStatus")
        self.setAccessibleName("Server machine")
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.hide()  # until the first answer
        self.dialog: SystemDetailsDialog | None = None
        store.updated.connect(self.show_info)
        store.unsupported.connect(self.hide)
        self.clicked.connect(self.open_details)

    def show_info(self, info: SystemInfo) -> None:
        self.setText(status_summary(info))
        self.setToolTip(status_tooltip(info))
        self.show()
        if self.dialog is not None:
            self.dialog.show_info(info)

    def open_details(self) -> None:
        if self.dialog is None:
            self.dialog = SystemDetailsDialog(self.window())
            self.dialog.finished.connect(lambda _result: setattr(self, "dialog", None))
        if self.store.info is not None:
            self.dialog.show_info(self.store.info)
        self.store.request_refresh(force=True)
        self.dialog.show()
        self.dialog.raise_()


class SystemDetailsDialog(QDialog):
    """Non-modal: it stays open and updates while the user works."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Server machine")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.host_label = QLabel(self)
        self.host_label.setTextFormat(Qt.TextFormat.PlainText)
        self.host_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.host_label.setWordWrap(True)
        self.gpu_note = QLabel(self)
        self.gpu_note.setTextFormat(Qt.TextFormat.PlainText)
        self.gpu_note.setWordWrap(True)
        self.table = QTableWidget(0, len(GPU_HEADERS), self)
        self.table.setAccessibleName("GPUs")
        self.table.setHorizontalHeaderLabels(GPU_HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        # The Ray cluster (issue 18): shown only for a server with --executor ray.
        self.cluster_label = QLabel(self)
        self.cluster_label.setTextFormat(Qt.TextFormat.PlainText)
        self.cluster_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cluster_label.setWordWrap(True)
        self.node_table = QTableWidget(0, len(NODE_HEADERS), self)
        self.node_table.setAccessibleName("Ray nodes")
        self.node_table.setHorizontalHeaderLabels(NODE_HEADERS)
        self.node_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.node_table.setTabKeyNavigation(False)
        self.node_table.verticalHeader().setVisible(False)
        self.node_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.cluster_label.hide()
        self.node_table.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.host_label)
        layout.addWidget(self.gpu_note)
        layout.addWidget(self.table, 1)
        layout.addSpacing(6)
        layout.addWidget(self.cluster_label)
        layout.addWidget(self.node_table, 1)
        # Takes the room when no table is shown (an unreachable cluster), so the lines stay together.
        layout.addStretch(0)
        self._filler_index = layout.count() - 1
        self._layout = layout
        layout.addWidget(buttons)
        self.resize(640, 320)

    def show_info(self, info: SystemInfo) -> None:
        host = info.host
        lines = [f"{host.name}: {host.cpu_count} CPUs, {host.cpu_percent:.0f}% busy; memory "
                 f"{format_bytes(host.memory_used)} used of {format_bytes(host.memory_total)}"]
        if info.disk is not None:
            lines.append(f"Data folder's disk: {format_bytes(info.disk.free)} free of {format_bytes(info.disk.total)}")
        if info.assigned_gpus:
            lines.append(f"Jobs are given these GPUs: {', '.join(info.assigned_gpus)}")
        self.host_label.setText("\n".join(lines))
        if info.gpus:
            self.gpu_note.hide()
        else:
            self.gpu_note.setText(f"No GPU listed: {info.gpu_note}" if info.gpu_note
                                  else "The server has no NVIDIA GPU.")
            self.gpu_note.show()
        rows = gpu_rows(info.gpus)
        self.table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in (0, 2, 4, 5):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self._show_cluster(info)

    def _show_cluster(self, info: SystemInfo) -> None:
        cluster = info.cluster
        if cluster is None:
            self.cluster_label.hide()
            self.node_table.hide()
            self.table.show()
            self._layout.setStretch(self._filler_index, 0)
            return
        # The server's own machine has no GPU to list (its note says why): the room goes to the nodes.
        self.table.setVisible(bool(info.gpus))
        if self.cluster_label.isHidden():
            self.resize(self.width(), max(self.height(), 520))
        self.cluster_label.setText(cluster_text(cluster))
        self.cluster_label.show()
        self.node_table.setVisible(cluster.reachable)
        rows = node_rows(cluster.nodes)
        self.node_table.setRowCount(len(rows))
        for row, (node, cells) in enumerate(zip(cluster.nodes, rows)):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setToolTip(node.node_id)  # the whole id, as a job's placement names its node
                if column in (3, 4):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.node_table.setItem(row, column, item)
        self._layout.setStretch(self._filler_index, 0 if info.gpus or cluster.reachable else 1)
