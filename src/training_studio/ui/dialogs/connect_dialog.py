"""The "Connect to server…" dialog: URL, token, TLS choice, Test connection, recent servers.

`ConnectDialog` collects and checks what the user typed, shows what `ConnectionTester` (the controller
that does the HTTP) reports, and on Connect remembers the server's profile in `AppSettings` and its
token in `TokenStore` (the OS keyring, or memory only, which the dialog says), then emits
`connect_requested(ConnectionRequest)` — or `local_requested` for "Use local server". Before a token
would be sent over plain http to a host that is not loopback, it asks first (a non-modal question opened
with `.open()`, never a nested event loop), once per URL for the dialog's life.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from training_studio.ui.connection import (
    ConnectionRequest,
    ConnectionTester,
    needs_plain_http_warning,
    tls_context,
)
from training_studio.ui.secrets import TokenLocation, TokenStore
from training_studio.ui.settings import AppSettings, ServerProfile, normalise_server_url

__all__ = ["ConnectDialog"]

PLAIN_HTTP_WARNING = ("This address uses plain http to another computer: the token would travel unencrypted, "
                      "and anyone on the network path could read it and control your jobs. Use https if "
                      "the server supports it.")


class ConnectDialog(QDialog):
    connect_requested = Signal(object)  # ConnectionRequest
    local_requested = Signal()

    def __init__(self, settings: AppSettings, tokens: TokenStore, tester: ConnectionTester | None = None,
                 *, current_url: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("connectDialog")
        self.setWindowTitle("Connect to server")
        self.settings = settings
        self.tokens = tokens
        self.tester = tester if tester is not None else ConnectionTester(self)
        self._confirmed_plain_http: set[str] = set()
        self.pending_question: QMessageBox | None = None
        self.request: ConnectionRequest | None = None

        layout = QVBoxLayout(self)
        intro = QLabel("Connect to a Training Studio server on another computer, or go back to the local "
                       "server that runs on this one.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)

        form = QFormLayout()
        self.url_combo = QComboBox(self)
        self.url_combo.setEditable(True)
        self.url_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.url_combo.setAccessibleName("Server address")
        self.url_combo.lineEdit().setPlaceholderText("https://training.example.com:8765")
        self.url_combo.setMinimumContentsLength(34)
        for profile in settings.server_profiles():
            self.url_combo.addItem(profile.label, profile.url)
        self.url_combo.setToolTip("Recent servers are in the list")
        form.addRow("Server &address:", self.url_combo)

        self.token_edit = QLineEdit(self)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setAccessibleName("Access token")
        self.token_edit.setPlaceholderText("the server's access token")
        self.show_token_button = QToolButton(self)
        self.show_token_button.setText("Show")
        self.show_token_button.setCheckable(True)
        self.show_token_button.setToolTip("Show the token")
        self.show_token_button.setAccessibleName("Show the token")
        self.show_token_button.toggled.connect(self._toggle_token_visible)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_edit, 1)
        token_row.addWidget(self.show_token_button)
        form.addRow("&Token:", token_row)
        token_label = form.labelForField(token_row)
        if isinstance(token_label, QLabel):
            token_label.setBuddy(self.token_edit)  # Alt+T reaches the field, not the row
        self.storage_label = QLabel(self)
        self.storage_label.setWordWrap(True)
        self.storage_label.setObjectName("tokenStorageNotice")
        form.addRow("", self.storage_label)
        layout.addLayout(form)

        self.tls_group = QGroupBox("Certificates (https)", self)
        tls_layout = QVBoxLayout(self.tls_group)
        self.system_certs_radio = QRadioButton("Trust the &system's certificates", self.tls_group)
        self.ca_file_radio = QRadioButton("Trust only this &CA file:", self.tls_group)
        self._tls_buttons = QButtonGroup(self)
        self._tls_buttons.addButton(self.system_certs_radio)
        self._tls_buttons.addButton(self.ca_file_radio)
        self.system_certs_radio.setChecked(True)
        ca_row = QHBoxLayout()
        self.ca_file_edit = QLineEdit(self.tls_group)
        self.ca_file_edit.setAccessibleName("CA file")
        self.ca_file_edit.setPlaceholderText("a PEM file with the certificate authority")
        self.browse_button = QPushButton("&Browse…", self.tls_group)
        self.browse_button.clicked.connect(self.choose_ca_file)
        ca_row.addWidget(self.ca_file_edit, 1)
        ca_row.addWidget(self.browse_button)
        tls_layout.addWidget(self.system_certs_radio)
        tls_layout.addWidget(self.ca_file_radio)
        tls_layout.addLayout(ca_row)
        layout.addWidget(self.tls_group)

        self.warning_label = QLabel(self)
        self.warning_label.setObjectName("plainHttpWarning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setTextFormat(Qt.TextFormat.PlainText)
        self.warning_label.setText(f"⚠ {PLAIN_HTTP_WARNING}")
        self.warning_label.setAccessibleName("Warning")
        layout.addWidget(self.warning_label)

        test_row = QHBoxLayout()
        self.test_button = QPushButton("&Test connection", self)
        self.test_button.clicked.connect(self.test_connection)
        self.result_label = QLabel(self)
        self.result_label.setObjectName("testResult")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.PlainText)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_row.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignTop)
        test_row.addWidget(self.result_label, 1)
        layout.addLayout(test_row)

        self.buttons = QDialogButtonBox(self)
        self.connect_button = self.buttons.addButton("&Connect", QDialogButtonBox.ButtonRole.AcceptRole)
        self.local_button = self.buttons.addButton("Use &local server", QDialogButtonBox.ButtonRole.ResetRole)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.connect_button.clicked.connect(self.connect_to_server)
        self.local_button.clicked.connect(self.use_local_server)
        self.buttons.rejected.connect(self.reject)
        self.connect_button.setDefault(True)
        layout.addWidget(self.buttons)

        self.tester.started.connect(self._on_test_started)
        self.tester.finished.connect(self._on_test_finished)
        self.url_combo.currentIndexChanged.connect(self._on_recent_chosen)
        self.url_combo.editTextChanged.connect(self._update_state)
        self.token_edit.textChanged.connect(self._update_state)
        self.ca_file_radio.toggled.connect(self._update_state)
        self.ca_file_edit.textChanged.connect(lambda text: self.ca_file_radio.setChecked(True) if text else None)

        if current_url:
            index = self.url_combo.findData(current_url)
            if index >= 0:
                self.url_combo.setCurrentIndex(index)
            else:
                self.url_combo.setEditText(current_url)
        elif self.url_combo.count():
            self.url_combo.setCurrentIndex(0)
        else:
            self.url_combo.setEditText("")
        self._on_recent_chosen(self.url_combo.currentIndex())
        self.setMinimumWidth(520)

    # what the user entered ---------------------------------------------------------------------
    def url_text(self) -> str:
        text = self.url_combo.currentText().strip()
        index = self.url_combo.currentIndex()
        if index >= 0 and text == self.url_combo.itemText(index):
            return str(self.url_combo.itemData(index))  # a recent server's label stands for its URL
        return text

    def current_request(self) -> ConnectionRequest:
        """The entered connection, checked; raises ValueError with a sentence for the user."""
        url = normalise_server_url(self.url_text())
        ca_file = self.ca_file_edit.text().strip() if self.ca_file_radio.isChecked() else ""
        if self.ca_file_radio.isChecked() and not ca_file:
            raise ValueError("Choose the CA file, or trust the system's certificates.")
        if ca_file and urlsplit(url).scheme == "https":
            tls_context(ca_file)  # a bad file is reported now, not as a connection failure
        return ConnectionRequest(url=url, token=self.token_edit.text().strip(),
                                 ca_file=ca_file if urlsplit(url).scheme == "https" else "")

    # slots -------------------------------------------------------------------------------------
    def test_connection(self) -> None:
        self._with_checked_request(self.tester.test)

    def connect_to_server(self) -> None:
        self._with_checked_request(self._accept_request)

    def use_local_server(self) -> None:
        self.request = None
        self.local_requested.emit()
        self.accept()

    def choose_ca_file(self) -> None:
        """Plain slot: the file dialog runs its own loop."""
        start = self.settings.last_folder("ca-file")
        path, _filter = QFileDialog.getOpenFileName(self, "Choose the CA certificate", start,
                                                    "Certificates (*.pem *.crt *.cer);;All files (*)")
        if path:
            self.settings.set_last_folder("ca-file", path)
            self.ca_file_edit.setText(path)
            self.ca_file_radio.setChecked(True)

    def _with_checked_request(self, action: Callable[[ConnectionRequest], None]) -> None:
        try:
            request = self.current_request()
        except ValueError as error:
            self._show_result(False, str(error))
            return
        if needs_plain_http_warning(request.url, request.token) and request.url not in self._confirmed_plain_http:
            self._ask_plain_http(request, action)
            return
        action(request)

    def _ask_plain_http(self, request: ConnectionRequest, action: Callable[[ConnectionRequest], None]) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Send the token unencrypted?",
                          f"Send the token to {request.url} over plain http?", QMessageBox.StandardButton.NoButton,
                          self)
        box.setObjectName("plainHttpQuestion")
        box.setInformativeText(PLAIN_HTTP_WARNING)
        send = box.addButton("Send &anyway", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered() -> None:
            self.pending_question = None
            if box.clickedButton() is send:
                self._confirmed_plain_http.add(request.url)
                action(request)

        box.finished.connect(lambda _result: answered())
        self.pending_question = box
        box.open()

    def _accept_request(self, request: ConnectionRequest) -> None:
        location = self.tokens.set(request.url, request.token)
        previous = self.settings.profile_for(request.url)
        self.settings.remember_server(ServerProfile(url=request.url, name=previous.name if previous else "",
                                                    ca_file=request.ca_file))
        self.settings.set_active_server(request.url)
        self.request = request
        if location is TokenLocation.MEMORY and request.token:
            self._update_storage_label()
        self.connect_requested.emit(request)
        self.accept()

    def _on_recent_chosen(self, index: int) -> None:
        if index < 0:
            self._update_state()
            return
        url = str(self.url_combo.itemData(index) or "")
        profile = self.settings.profile_for(url)
        if profile is not None:
            self.ca_file_edit.setText(profile.ca_file)
            (self.ca_file_radio if profile.ca_file else self.system_certs_radio).setChecked(True)
            self.token_edit.setText(self.tokens.get(url) or "")
        self.result_label.clear()
        self._update_state()

    def _on_test_started(self) -> None:
        self.test_button.setEnabled(False)
        self._show_result(None, "Testing…")

    def _on_test_finished(self, worked: bool, message: str) -> None:
        self.test_button.setEnabled(True)
        self._show_result(worked, message)

    def _show_result(self, worked: bool | None, message: str) -> None:
        prefix = "" if worked is None else ("✓ " if worked else "✕ ")
        self.result_label.setText(prefix + message)
        self.result_label.setAccessibleDescription(message)

    def _toggle_token_visible(self, visible: bool) -> None:
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Normal if visible else QLineEdit.EchoMode.Password)
        self.show_token_button.setText("Hide" if visible else "Show")

    def _update_state(self, *args: object) -> None:
        text = self.url_text()
        try:
            url = normalise_server_url(text)
        except ValueError:
            url = ""
        is_https = urlsplit(url).scheme == "https" if url else text.lower().startswith("https")
        self.tls_group.setEnabled(is_https)
        self.ca_file_edit.setEnabled(self.ca_file_radio.isChecked())
        self.browse_button.setEnabled(True)
        self.warning_label.setVisible(bool(url) and needs_plain_http_warning(url, self.token_edit.text().strip()))
        self._update_storage_label()

    def _update_storage_label(self) -> None:
        notice = self.tokens.storage_notice()
        if notice:
            self.storage_label.setText(f"⚠ {notice}")
        else:
            self.storage_label.setText(f"The token is kept in the system keyring ({self.tokens.backend_name}).")
