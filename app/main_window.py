"""The main window: canvas in the centre, panels in docks, menus with shortcuts, status
bar, and the render loop (state change -> request to the worker -> frame on the canvas).

    UI event -> Document edit -> stateChanged -> worker.request(state, id) -> frameReady

Video generators add a timeline: the playhead is the state's time (moved without undo
steps), frames already rendered (ahead by the worker, or earlier) are shown from the
playback cache at once, and only missing frames go to the worker.
"""
from __future__ import annotations

import logging
from pathlib import Path

import shiboken6
from PySide6.QtCore import QByteArray, QEvent, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QToolBar,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from models.io.bundled import bundled_generators, default_checkpoint, describe, stored_meta

from . import qt_compat, settings
from .autosave import Autosaver
from .canvas import Canvas
from .document import Document
from .files import FileController
from .fitting import PictureFitter
from .panels import MtmPanel, ObjectsPanel, SamplePanel
from .playback import Playback
from .render_worker import RenderWorker, start_worker, stop_worker
from .timeline import TimelinePanel
from .video_export import VideoExporter
from .views import HeatmapViews
from .widgets import KeysToFocusedControls

STATUS_MS = 6000
EXTRAS_MS = 100
# While a handle or a slider is dragged, generators larger than this render a preview: the
# synthesis stops at this resolution and its RGB image is upsampled. The full frame follows
# when the drag ends, or when the mouse rests (no move for FULL_AFTER_IDLE_MS after the
# newest preview is shown) with the button still down.
PREVIEW_RESOLUTION = 64
FULL_AFTER_IDLE_MS = 40
# Where the preview itself is too slow for a 60 Hz mouse (more than two frames at 60 Hz),
# the next ones stop one resolution earlier, down to PREVIEW_MIN_RESOLUTION; fast ones go
# back up. Measured on 2 CPU cores, the 128 px rooms model: a 64 px preview costs 65-77%
# of the full frame's CPU time, a 32 px one 55% (the 128 px layers have few channels).
PREVIEW_BUDGET_MS = 33.0
PREVIEW_MIN_RESOLUTION = 32
CLOSED_DOCKS_KEY = "window/closed_docks"  # the panels the user closed (see _follow_capabilities)
DEFAULT_SIZE = QSize(1320, 860)
# Room for what a window manager adds around the window (title bar, borders): the first
# size must fit the screen with it (1320 x 860 was cut off on a 1280 x 800 laptop).
FRAME_ALLOWANCE = QSize(16, 48)


def initial_size(available: QSize | None) -> QSize:
    """The window's first size: DEFAULT_SIZE, shrunk to fit the screen's available area
    with room for the window manager's frame (a remembered geometry replaces it)."""
    if available is None or available.isEmpty():
        return QSize(DEFAULT_SIZE)
    return DEFAULT_SIZE.boundedTo(available - FRAME_ALLOWANCE)


def _key_names(action: QAction) -> str:
    """An action's keys as a tooltip says them: "N or Space"."""
    return " or ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())


class MainWindow(QMainWindow):
    frameShown = Signal(int)  # request id of the frame now on the canvas
    errorShown = Signal(str, str)  # title, message (the dialog is open, not blocking)

    def __init__(self, worker: RenderWorker | None = None, autosave_dir: str | None = None,
                 remember_layout: bool = True):
        qt_compat.guard_singleton_refcounts()  # before the first of many void Qt calls
        qt_compat.collect_garbage_on_gui_thread()  # never free Qt objects on the worker's thread
        super().__init__()
        self.setWindowTitle("SteerGAN Studio")
        self.resize(initial_size(self.screen().availableGeometry().size() if self.screen() else None))
        self.setAcceptDrops(True)
        self.document = Document(self)
        self.worker = worker or RenderWorker()
        # The previews a drag may ask for (see _adapt_preview): traced ahead, when idle.
        self.worker.trace_previews = tuple(r for r in (64, 32, 16, 8)
                                           if PREVIEW_MIN_RESOLUTION <= r <= PREVIEW_RESOLUTION)
        self._thread = start_worker(self.worker)
        self.canvas = Canvas(self.document)
        self.files = FileController(self, self.document, self.worker, self.canvas)
        self.autosaver = Autosaver(self.document, autosave_dir, parent=self)
        self.playback = Playback(self.document, self.worker, lambda: self.files.generation, self)
        self.video_exporter = VideoExporter(self, self.worker)
        self.fitter = PictureFitter(self, self.worker)
        self.last_error: tuple[str, str] | None = None
        self._next_id = 0
        self._requested: dict[int, object] = {}  # request id -> the state it renders
        self._closed = False
        self._extras_frame = None
        self._extras_timer = QTimer(self, singleShot=True, interval=EXTRAS_MS)
        self._extras_timer.timeout.connect(self._flush_extras)
        self.preview_resolution: int | None = PREVIEW_RESOLUTION  # None: never preview
        self.preview_min = PREVIEW_MIN_RESOLUTION
        self.preview_budget_ms = PREVIEW_BUDGET_MS
        self._preview_now: int | None = None  # the adapted preview resolution (see _adapt_preview)
        self._newest_is_preview = False  # the newest render request is a preview
        self._full_timer = QTimer(self, singleShot=True, interval=FULL_AFTER_IDLE_MS)
        self._full_timer.timeout.connect(self._request_full_frame)
        self.close_prompt: QMessageBox | None = None  # the open "unsaved changes" question
        self._remember_layout = remember_layout  # off for --screenshot: the default layout, always

        self._make_actions()
        self._make_centre()
        self._make_docks()
        self._make_menus()
        self._make_status_bar()
        self._connect()
        self._set_scene_actions_enabled(None)
        if remember_layout:
            self._restore_layout()
        app = QApplication.instance()
        if app is not None:  # the worker thread must end before Qt does, however we exit
            app.aboutToQuit.connect(self.shutdown)
            self._keys_filter = KeysToFocusedControls(self)  # (removed with the window)
            app.focusChanged.connect(self._keys_filter.watch)

    # ---- construction -------------------------------------------------------------------
    def _action(self, text: str, slot=None, shortcut=None, checkable=False, checked=False, tip=None) -> QAction:
        action = QAction(text, self)
        action.setCheckable(checkable)
        if checkable:
            action.setChecked(checked)
        action.setStatusTip(tip or text.replace("&", "").rstrip("…"))
        self._set_shortcuts(action, shortcut or [])
        if slot is not None:
            (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)  # shortcuts work whichever dock has the focus
        return action

    @staticmethod
    def _set_shortcuts(action: QAction, keys) -> None:
        """Set the keys and say them in the tooltip."""
        keys = keys if isinstance(keys, (list, tuple)) else [keys]
        action.setShortcuts([QKeySequence(k) for k in keys])
        names = _key_names(action)
        tip = action.statusTip()
        action.setToolTip(f"{tip} ({names})" if names else tip)

    @staticmethod
    def _name_step_in_tooltip(action: QAction) -> None:
        if not shiboken6.isValid(action):  # its changed() while Qt deletes it
            return
        tip = f"{action.text().replace('&', '')} ({_key_names(action)})"
        if action.toolTip() != tip:
            action.setToolTip(tip)

    def _make_actions(self) -> None:
        doc, files, canvas = self.document, self.files, self.canvas
        a = self._action
        self.act_open = a("&Open Checkpoint…", files.ask_open_checkpoint, QKeySequence.StandardKey.Open)
        self.act_open_session = a("Open &Session…", files.ask_open_session, "Ctrl+Shift+O")
        self.act_open_image = a("Open &Image…", self.fitter.ask, "Ctrl+I",
                                tip="Fit the generator to a picture you bring: a scene you can then edit")
        self.act_tune = a("&Tune Weights When Fitting", self.fitter.set_tune, checkable=True,
                          checked=self.fitter.tune(), tip="Tune the generator's weights (slower, closer)")
        self.act_save = a("&Save Session", lambda: files.save_session(), QKeySequence.StandardKey.Save)
        self.act_save_as = a("Save Session &As…", files.ask_save_session, "Ctrl+Shift+S")
        self.act_export = a("&Export Image…", files.ask_export, "Ctrl+E")
        self.act_export_video = a("Export &Video…", self.video_exporter.ask, "Ctrl+Shift+E",
                                  tip="Render the scene over time to an MP4 or GIF")
        self.act_quit = a("&Quit", self.close, "Ctrl+Q")  # StandardKey.Quit is empty on some platforms
        self.act_undo = doc.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(QKeySequence("Ctrl+Z"))
        self.act_redo = doc.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for action, word in ((self.act_undo, "Undo"), (self.act_redo, "Redo")):
            # The toolbar says only "Undo"/"Redo": with the step's name ("Undo Move object 2 to
            # (0.39, 0.72)") every button after it moved at each edit. The menu and the tooltip
            # still name the step. (The tooltip is set again only when it differs: no loop.)
            action.setIconText(word)
            action.changed.connect(lambda a=action: self._name_step_in_tooltip(a))
            self._name_step_in_tooltip(action)
        self.addActions([self.act_undo, self.act_redo])
        self.act_new_sample = a("&New Sample", lambda: doc.new_sample(), ["N", "Space"],
                                tip="Draw everything anew except locked objects")
        self.act_offsets = a("&Offsets On", lambda on: doc.set_offsets_on(on), "O", checkable=True, checked=True,
                             tip="Switch the learned MTM offsets on or off")
        self.act_resample = a("&Resample Selected Blocks", canvas.resample_selection, "R",
                              tip="Shift-click blocks to select them, then resample them together")
        self.act_clear_selection = a("Clear Block Selection", canvas.clear_selection, "Esc")
        self.act_handles = a("Object &Handles", lambda on: canvas.set_overlay_visible("handles", on), "H",
                             checkable=True, checked=True)
        self.act_grid = a("Block &Grid", lambda on: canvas.set_overlay_visible("grid", on), "G",
                          checkable=True, checked=True)
        self.act_field = a("Offset &Field", lambda on: canvas.set_overlay_visible("offsets", on), "F",
                           checkable=True, checked=False)
        self.act_diff = a("&Difference Highlight", lambda on: setattr(canvas, "flash_differences", on), "D",
                          checkable=True, checked=True,
                          tip="Briefly tint what a block resample changed")
        self.act_picture = a("Show Fitted &Picture", lambda on: canvas.set_overlay_visible("picture", on), "P",
                             checkable=True, checked=False,
                             tip="Draw the picture the scene was fitted to over it, half transparent")
        self.act_picture.setEnabled(False)  # until the scene is one fitted in this studio session
        # Smooth unless the user chose crisp pixels: a 64 px picture drawn 600 px wide reads as a
        # picture smoothed, as a mosaic crisp. (QSettings' ini files keep "false" as a string.)
        smooth = settings.get("view/smooth") not in (False, "false")
        self.act_smooth = a("&Smooth Pixels", self._set_smooth, "S", checkable=True, checked=smooth,
                            tip="Draw the picture smoothly scaled; off shows its pixels crisp, to edit by")
        canvas.set_smooth(smooth)
        canvas.set_overlay_visible("offsets", False)
        pb = self.playback
        self.act_play = a("&Play", pb.toggle, "K", tip="Play or pause")
        self.act_first = a("&First Frame", lambda: pb.go_to(0), "Home")
        self.act_prev = a("Pre&vious Frame", lambda: pb.step(-1), ["Left", ","])
        self.act_next = a("&Next Frame", lambda: pb.step(1), ["Right", "."])
        self.act_loop = a("&Loop", pb.set_loop, "L", checkable=True, checked=pb.loop,
                          tip="Play the range again and again")
        self.act_new_motion = a("New &Motion", lambda: doc.new_motion(), "M",
                                tip="Draw new motion: the same scene moves differently")
        for action, symbol in ((self.act_first, "|◀"), (self.act_prev, "◀|"), (self.act_play, "▶"),
                               (self.act_next, "|▶")):
            action.setIconText(symbol)  # the timeline's buttons; menus keep the words
        self._time_actions = (self.act_play, self.act_first, self.act_prev, self.act_next, self.act_loop,
                              self.act_new_motion, self.act_export_video)

    def _make_centre(self) -> None:
        """The picture, and under it the timeline of video generators (as in a video tool)."""
        self.timeline = TimelinePanel(self.playback, [self.act_first, self.act_prev, self.act_play, self.act_next],
                                     self.act_loop, self.act_new_motion)
        self.timeline.hide()  # shown for generators with time
        centre = QWidget()
        column = QVBoxLayout(centre)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.canvas, 1)
        column.addWidget(self.timeline)
        self.setCentralWidget(centre)

    def _dock(self, title: str, widget, area, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState() needs names
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _make_docks(self) -> None:
        right, bottom = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea
        self.sample_panel = SamplePanel(self.document, self.act_new_sample)
        self.objects_panel = ObjectsPanel(self.document)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.objects_panel)
        self.mtm_panel = MtmPanel(self.document, self.act_offsets, self.act_field)
        self.heatmaps = HeatmapViews()
        self.history = QUndoView(self.document.undo_stack)
        self.history.setEmptyLabel("Opened")
        self.dock_sample = self._dock("Sample", self.sample_panel, right, "sample")
        self.dock_objects = self._dock("Objects", scroll, right, "objects")
        self.dock_mtm = self._dock("MTM offsets", self.mtm_panel, right, "mtm")
        self.dock_heatmaps = self._dock("Heatmaps", self.heatmaps, bottom, "heatmaps")
        self.dock_history = self._dock("History", self.history, bottom, "history")
        self.splitDockWidget(self.dock_heatmaps, self.dock_history, Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_sample], [370], Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_sample, self.dock_mtm], [100, 300], Qt.Orientation.Vertical)
        self.resizeDocks([self.dock_heatmaps, self.dock_history], [820, 260], Qt.Orientation.Horizontal)
        self.resizeDocks([self.dock_heatmaps], [170], Qt.Orientation.Vertical)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        # The panels that follow the model's capabilities. Which of them the user closed is kept
        # apart from what the model hides (saveState cannot tell the two apart): a dock closes
        # by close() (its title bar's button, View menu, the docks' context menu), and the View
        # menu shows it again.
        self._capability_docks = (self.dock_objects, self.dock_heatmaps, self.dock_mtm)
        self._closed_docks: set[str] = set()
        for dock in self._capability_docks:
            dock.installEventFilter(self)
            dock.toggleViewAction().triggered.connect(
                lambda on, name=dock.objectName(): on and self._closed_docks.discard(name))

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addActions([self.act_open, self.act_open_session, self.act_open_image, self.act_tune])
        self.recent_menu = file.addMenu("Open &Recent")
        self._fill_recent(settings.recent_files())
        self.bundled_menu = file.addMenu("Open &Bundled Model")
        self._fill_bundled()
        file.addSeparator()
        file.addActions([self.act_save, self.act_save_as, self.act_export, self.act_export_video])
        file.addSeparator()
        file.addAction(self.act_quit)
        edit = bar.addMenu("&Edit")
        edit.addActions([self.act_undo, self.act_redo])
        scene = bar.addMenu("&Scene")
        scene.addActions([self.act_new_sample, self.act_offsets])
        scene.addSeparator()
        scene.addActions([self.act_resample, self.act_clear_selection])
        playback = bar.addMenu("&Playback")
        playback.addActions([self.act_play, self.act_first, self.act_prev, self.act_next, self.act_loop])
        playback.addSeparator()
        playback.addAction(self.act_new_motion)
        view = bar.addMenu("&View")
        view.addActions([self.act_handles, self.act_grid, self.act_field, self.act_diff, self.act_picture,
                         self.act_smooth])
        view.addSeparator()
        for dock in (self.dock_sample, self.dock_objects, self.dock_mtm, self.dock_heatmaps, self.dock_history):
            view.addAction(dock.toggleViewAction())
        tools = QToolBar("Main")
        tools.setObjectName("toolbar")
        tools.setMovable(False)
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tools.addActions([self.act_open, self.act_save, self.act_export])
        tools.addSeparator()
        tools.addActions([self.act_undo, self.act_redo])
        tools.addSeparator()
        tools.addActions([self.act_new_sample, self.act_offsets])
        tools.addSeparator()
        tools.addActions([self.act_handles, self.act_grid, self.act_field])
        self.addToolBar(tools)

    def _fill_recent(self, paths: list[str]) -> None:
        self.recent_menu.clear()
        for path in paths:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.files.open_recent(p))
        self.recent_menu.setEnabled(bool(paths))

    def _fill_bundled(self) -> None:
        """The generators that ship with the studio (checkpoints/): a new user finds the
        figures and video models here without looking for the install folder."""
        self.bundled_menu.clear()
        default = default_checkpoint()
        for path in bundled_generators():
            # How each was trained, so that an early GPU model is not mistaken for the best one.
            detail = describe(stored_meta(path))
            label = path.stem + (f"  —  {detail}" if detail else "") + ("  (default)" if path == default else "")
            action = self.bundled_menu.addAction(label)
            action.setToolTip(str(path))
            action.setStatusTip(str(path))
            action.triggered.connect(lambda _=False, p=str(path): self.files.user_open(p))
        self.bundled_menu.setEnabled(not self.bundled_menu.isEmpty())

    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: loading has no meaningful progress
        self.busy.setFixedWidth(120)
        self.busy.setMaximumHeight(14)
        self.busy.hide()
        self.latency_label = QLabel("– ms")
        self.latency_label.setToolTip("Render time of the last frame")
        self.device_label = QLabel("")
        self.checkpoint_label = QLabel("no checkpoint")
        for widget in (self.busy, self.latency_label, self.device_label, self.checkpoint_label):
            bar.addPermanentWidget(widget)

    def _connect(self) -> None:
        doc, worker = self.document, self.worker
        doc.stateChanged.connect(self._request_render)
        doc.stateChanged.connect(self._sync_actions)
        doc.generatorChanged.connect(self._on_generator)
        doc.undo_stack.cleanChanged.connect(self.update_title)
        worker.frameReady.connect(self._on_frame)
        worker.failed.connect(self._on_render_failed)
        worker.deviceChanged.connect(self._on_device)
        worker.fitUnavailable.connect(self.show_message)
        self.files.recentChanged.connect(self._fill_recent)
        self.mtm_panel.fieldChanged.connect(self._update_offset_field)
        self.canvas.frameShown.connect(self.frameShown)
        self.canvas.dragFinished.connect(self._request_full_frame)
        for slider in (self.sample_panel.truncation.slider, self.mtm_panel.strength.slider):
            slider.sliderReleased.connect(self._request_full_frame)
        self.playback.failed.connect(lambda message: self.show_error("Playback stopped", message))
        self.autosaver.failed.connect(self._on_autosave_failed)
        self.playback.changed.connect(self._sync_play_action)

    # ---- the render loop ------------------------------------------------------------------
    def _request_render(self, state) -> None:
        if self.files.generation < 0 or self._closed:
            return
        self._next_id += 1
        cached = self.playback.cache.get(state) if self.playback.enabled else None
        if cached is not None:  # played or scrubbed before, or rendered ahead: no worker needed
            self._newest_is_preview = False
            self._show(self._next_id, cached, state, None)
            return
        preview = self._preview_size()
        self._newest_is_preview = preview is not None
        self._requested[self._next_id] = state
        self.worker.request(state, self._next_id, self.files.generation, preview)
        if preview is not None:
            self._full_timer.stop()  # the mouse moved: it is not resting (see _show)

    def _preview_size(self) -> int | None:
        """The preview resolution while the user drags something, else None (full frame)."""
        cfg, size = self.document.config, self.preview_resolution
        if cfg is None or size is None or cfg.resolution <= size:
            return None
        sliders = (self.sample_panel.truncation.slider, self.mtm_panel.strength.slider)
        if not (self.canvas.dragging or any(s.isSliderDown() for s in sliders)):
            return None
        if self._preview_now is None or self._preview_now > size:
            self._preview_now = size
        return self._preview_now

    def _adapt_preview(self, ms: float) -> None:
        """A preview took `ms` to render: too slow for the mouse, stop one resolution
        earlier next time; much faster than needed, one later (up to preview_resolution)."""
        now = self._preview_now
        if now is None or self.preview_resolution is None:
            return
        if ms > self.preview_budget_ms and now // 2 >= self.preview_min:
            self._preview_now = now // 2
        elif ms < self.preview_budget_ms / 2 and now * 2 <= self.preview_resolution:
            self._preview_now = now * 2

    def _request_full_frame(self) -> None:
        """A drag ended or rests: replace its preview by the full frame of the same state."""
        self._full_timer.stop()
        if self._newest_is_preview and self.document.state is not None and not self._closed:
            self._newest_is_preview = False
            self._next_id += 1
            self._requested[self._next_id] = self.document.state
            self.worker.request(self.document.state, self._next_id, self.files.generation)

    def request_id(self) -> int:
        """The id of the newest render request (tests and the benchmark wait for it)."""
        return self._next_id

    @Slot(int, object, float)
    def _on_frame(self, request_id: int, frame, ms: float) -> None:
        state = self._requested.get(request_id)
        if state is None:
            return  # made for a previous generator
        if frame.preview:
            self._adapt_preview(ms)
        else:  # a preview is never a frame of the video
            self.playback.on_rendered(state, frame)  # right for its state even when too late to show
        if request_id > self.canvas.frame_id:  # else stale: older than what is shown
            self._show(request_id, frame, state, ms)

    def _show(self, request_id: int, frame, state, ms: float | None) -> None:
        for old in [k for k in self._requested if k <= request_id]:
            del self._requested[old]
        self.canvas.show_frame(request_id, frame, state)
        if frame.preview and request_id == self._next_id:
            # The newest preview is on screen: if no move follows within FULL_AFTER_IDLE_MS,
            # the mouse rests and the full frame is rendered. (Timed from the preview shown,
            # not from the move: a full render must never start under a drag in progress,
            # or the next preview waits for it.)
            self._full_timer.start()
        self._show_extras(frame)
        self._update_offset_field()
        if ms is not None:
            self.latency_label.setText(f"render {ms:.0f} ms" + (" (preview)" if frame.preview else ""))
        self.files.frame_shown()

    def _show_extras(self, frame) -> None:
        """The heatmap views and the offset plot follow at most every EXTRAS_MS: during a
        drag they would otherwise repaint 20-30 times a second, on the CPU the render
        needs. The newest frame is always shown in the end."""
        self._extras_frame = frame
        if not self._extras_timer.isActive():
            self._flush_extras()
            self._extras_timer.start()

    def _flush_extras(self) -> None:
        frame, self._extras_frame = self._extras_frame, None
        if frame is not None:
            self.heatmaps.show_frame(frame)
            self.mtm_panel.show_frame(frame)

    @Slot(int, str)
    def _on_render_failed(self, request_id: int, message: str) -> None:
        self._requested.pop(request_id, None)
        self.show_message(f"Render failed: {message}")

    @Slot(str)
    def _on_device(self, label: str) -> None:
        self.device_label.setText(label)
        if "out of memory" in label:
            self.show_message("The GPU ran out of memory: rendering on the CPU from now on")
        elif "STEERGAN_DEVICE" in label:  # a device this machine lacks: the CPU, and why
            self.show_message(f"Rendering on the {label}")

    @Slot(str)
    def _on_autosave_failed(self, message: str) -> None:
        logging.getLogger("steergan.window").warning("autosave failed: %s", message)
        self.show_error("Autosave failed", f"{message}. Your edits are not autosaved until this is fixed:"
                                           " save the session to keep them.")

    def _update_offset_field(self) -> None:
        frame, layer = self.canvas.frame, self.mtm_panel.chosen_layer()
        offsets = None if frame is None or layer is None else frame.offsets.get(layer)
        self.canvas.set_offset_field(offsets, float(self.mtm_panel.gain.value()))

    # ---- state -> widgets -----------------------------------------------------------------
    def _on_generator(self, info) -> None:
        self._requested.clear()
        self._set_scene_actions_enabled(info.config)
        cfg = info.config
        self._follow_capabilities(cfg)
        video = cfg.time is not None
        self.timeline.setVisible(video)
        # Space plays and pauses video, as in every video tool; without time it draws a new sample.
        self._set_shortcuts(self.act_play, ["Space", "K"] if video else ["K"])
        self._set_shortcuts(self.act_new_sample, ["N"] if video else ["N", "Space"])
        self.checkpoint_label.setText(info.name)
        self.checkpoint_label.setToolTip(info.path or f"untrained {info.ref.architecture}")
        self.update_title()

    def _follow_capabilities(self, cfg) -> None:
        """A panel the model cannot use is hidden, and View cannot show it (an MTM panel of a
        model without MTM made undo steps that change nothing); one it can use shows, unless
        the user closed it (opening a model, or starting the studio, showed it again)."""
        objects = bool(cfg.objects or cfg.hierarchical)
        for dock, usable in zip(self._capability_docks, (objects, objects, bool(cfg.mtm))):
            dock.toggleViewAction().setEnabled(usable)
            dock.setVisible(usable and dock.objectName() not in self._closed_docks)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Close and obj in self._capability_docks:
            self._closed_docks.add(obj.objectName())  # the user closed it (the model hides by hide())
        return super().eventFilter(obj, event)

    def _set_scene_actions_enabled(self, cfg) -> None:
        loaded = cfg is not None
        for action in (self.act_save, self.act_save_as, self.act_export, self.act_new_sample):
            action.setEnabled(loaded)
        for action in (self.act_offsets, self.act_field):
            action.setEnabled(loaded and bool(cfg.mtm))
        for action in (self.act_grid, self.act_resample, self.act_clear_selection):
            action.setEnabled(loaded and bool(cfg.grid))
        self.act_handles.setEnabled(loaded and bool(cfg.objects or cfg.hierarchical))
        for action in self._time_actions:
            action.setEnabled(loaded and cfg.time is not None)

    def _sync_play_action(self) -> None:
        playing = self.playback.playing
        self.act_play.setText("&Pause" if playing else "&Play")
        self.act_play.setIconText("❚❚" if playing else "▶")

    def _sync_actions(self, state) -> None:
        self.act_offsets.blockSignals(True)
        self.act_offsets.setChecked(state.offsets_on)
        self.act_offsets.blockSignals(False)
        # The fitted picture, while the scene is one fitted in this studio session (edits
        # keep its fit; undo before the fit leaves nothing to compare with).
        picture = None if state.fit is None else self.fitter.pictures.get(state.fit)
        self.canvas.set_picture(picture)
        self.act_picture.setEnabled(picture is not None)

    def update_title(self, *_) -> None:
        """"scene.json[*] — rooms — SteerGAN Studio": Qt shows the [*] as "*" while the
        scene has unsaved edits (a clean undo back to the saved state clears it)."""
        info = self.document.info
        if info is None:
            self.setWindowTitle("SteerGAN Studio")
            self.setWindowModified(False)
            return
        self.setWindowTitle(f"{self.document_name()}[*] — {info.name} — SteerGAN Studio")
        self.setWindowModified(not self.document.undo_stack.isClean())

    def document_name(self) -> str:
        return Path(self.files.session_path).name if self.files.session_path else "Untitled"

    # ---- messages ---------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """An error dialog that does not block (window-modal, opened, not exec'd)."""
        self.last_error = (title, message)
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.show_message(message)
        self.errorShown.emit(title, message)

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_MS)

    def set_busy(self, text: str | None) -> None:
        self.busy.setVisible(text is not None)
        if text:
            self.statusBar().showMessage(text)
        else:
            self.statusBar().clearMessage()

    # ---- drag and drop, layout, exit ----------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files.user_open(paths[0])

    def _set_smooth(self, on: bool) -> None:
        self.canvas.set_smooth(on)
        settings.put("view/smooth", bool(on))

    def _restore_layout(self) -> None:
        geometry, state = settings.get("window/geometry"), settings.get("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state)
        known = {dock.objectName() for dock in self._capability_docks}
        self._closed_docks = set(settings.names(CLOSED_DOCKS_KEY)) & known

    def closeEvent(self, event) -> None:
        try:
            may_close = self._closed or not self.isWindowModified() or self.confirm_close()
        except Exception as exc:  # escaping closeEvent, Qt would close the window and the edits with it
            logging.getLogger("steergan.window").exception("closing")
            self.show_error("Cannot close", f"Saving before closing failed ({exc}); the window stays open.")
            may_close = False
        if not may_close:
            event.ignore()  # Cancel, or a Save that did not happen: the window stays
            return
        self.shutdown()
        super().closeEvent(event)

    def confirm_close(self) -> bool:
        """Unsaved edits: ask Save / Discard / Cancel. True when the window may close."""
        return self.confirm_discard("closing")

    def confirm_replace(self, what: str) -> bool:
        """Before anything replaces the scene (open checkpoint, bundled model, session, a drop,
        a recent file): True at once without unsaved edits, else as quit asks."""
        return not self.isWindowModified() or self.confirm_discard(f"opening {what}")

    def confirm_discard(self, before: str) -> bool:
        """Unsaved edits: ask Save / Discard / Cancel before `before` ("closing", "opening
        x"). True when the edits are saved or may be discarded."""
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                          f"Save the changes to {self.document_name()} before {before}?", buttons, self)
        box.setInformativeText("Your edits are lost if you don't save them.")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        self.close_prompt = box
        try:
            answer = box.exec()
        finally:
            self.close_prompt = None
            box.deleteLater()
        if answer == QMessageBox.StandardButton.Save:
            return self.files.save_session()  # asks where when the scene has no file yet
        return answer == QMessageBox.StandardButton.Discard

    @Slot()
    def shutdown(self) -> None:
        """Stop the worker and end the autosave (a clean exit leaves no autosave to offer)."""
        if self._closed:
            return
        self._closed = True
        self.playback.pause()
        self._full_timer.stop()
        if self._remember_layout:
            settings.put("window/geometry", self.saveGeometry())
            settings.put("window/state", self.saveState())
            settings.put(CLOSED_DOCKS_KEY, sorted(self._closed_docks))
        stop_worker(self.worker, self._thread)
        self.autosaver.clean_exit()
