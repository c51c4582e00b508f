"""The lesson format: ``lesson.yaml`` plus plain Istio/Kubernetes YAML files.

``mesh.lesson.model`` holds the decoded values, ``mesh.lesson.load`` reads a lesson folder with
positioned diagnostics (finding it and its app: ``search``; the files it names: ``refs``; checks
of its traffic and steps: ``check_traffic``, ``check_steps``). Documented in ``docs/lesson-format.md``.
"""

from mesh.lesson.load import APP_PATH_ENV, app_search_path, find_app, find_lessons, load_lesson
from mesh.lesson.model import (
    CONFIG_MEASURES,
    METRICS,
    SPECIAL_SERVICES,
    TRAFFIC_PROTOCOLS,
    TRAFFIC_SCHEMES,
    BreakAction,
    CompareTolerance,
    ConfigSelector,
    Event,
    Expectation,
    Lesson,
    LessonSpec,
    LessonStep,
    PanelSelector,
    RequestSpec,
    Selector,
    TracingSpec,
    TrafficSpec,
    parse_address,
)

__all__ = [
    "APP_PATH_ENV",
    "CONFIG_MEASURES",
    "METRICS",
    "SPECIAL_SERVICES",
    "TRAFFIC_PROTOCOLS",
    "TRAFFIC_SCHEMES",
    "BreakAction",
    "CompareTolerance",
    "ConfigSelector",
    "Event",
    "Expectation",
    "Lesson",
    "LessonSpec",
    "LessonStep",
    "PanelSelector",
    "RequestSpec",
    "Selector",
    "TracingSpec",
    "TrafficSpec",
    "app_search_path",
    "find_app",
    "find_lessons",
    "load_lesson",
    "parse_address",
]
